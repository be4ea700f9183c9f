/**
 * The TUI's field filters, mark-all, migration picker, hosts view (cordon, drain), groups view and
 * events view, driven by keys against a fake feed: what an operator sees and what each key does.
 */
import {afterEach, describe, expect, it} from 'vitest';
import {cleanup} from 'ink-testing-library';
import type {KloudEvent, StoredGroup} from '../../source/protocol/index.js';
import {hostStatus, KEYS, makeVm, NOW, renderTui, snapshot} from '../helpers/tui.js';

afterEach(() => {
	cleanup();
});

const selectedLine = (frame: string) => frame.split('\n').find(line => line.includes('›')) ?? '';
const vmIds = (lines: readonly string[]) => lines.map(line => line.match(/vm-[a-z]{8}/)![0]);

/** Three hosts: host-a with two crashed VMs and a running one, host-b (cordoned, budgets reported) with one, host-c empty. */
const fleet = () => [
	snapshot('host-a', [
		makeVm('vm-aaaaaaaa', 'host-a', {state: 'crashed', pid: null, exit: 'exit code 1', createdAt: NOW - 3000}),
		makeVm('vm-abababab', 'host-a', {state: 'crashed', pid: null, exit: 'killed by SIGKILL', createdAt: NOW - 2000}),
		makeVm('vm-acacacac', 'host-a', {createdAt: NOW - 1000, memoryMb: 512}),
	], ['host-a', 'host-b', 'host-c'], {memoryBudgetMb: 1800, memoryCommittedMb: 512, cpuBudget: 32, cpusCommitted: 1}),
	snapshot('host-b', [makeVm('vm-bbbbbbbb', 'host-b', {state: 'crashed', pid: null, exit: 'exit code 2'})], ['host-b'], {cordoned: true, memoryBudgetMb: 8000, memoryCommittedMb: 0}),
	snapshot('host-c', [], ['host-c'], {memoryBudgetMb: 1800, memoryCommittedMb: 256, cpuBudget: 32, cpusCommitted: 8, underlay: '10.99.0.3', broker: '127.0.0.1:5672'}),
];

describe('field filters and mark-all', () => {
	it('stops every crashed VM on host-a with / state:crashed host:host-a, *, x, y', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-bbbbbbbb'));
		await tui.press('/', ...'state:crashed host:host-a', KEYS.enter);
		await tui.waitFor(text => text.includes('filter: state:crashed host:host-a'));
		expect(vmIds(tui.tableLines())).toEqual(['vm-aaaaaaaa', 'vm-abababab']);
		expect(tui.frame()).toContain('2/4 VMs');
		await tui.press('*');
		await tui.waitFor(text => text.includes('marked 2 VMs (filter: state:crashed host:host-a)'));
		expect(vmIds(tui.tableLines().filter(line => line.startsWith('*')))).toEqual(['vm-aaaaaaaa', 'vm-abababab']);
		await tui.press('x');
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('Stop (ACPI power-off, then kill after the grace period) 2 VMs? [y/N]');
		await tui.press('y');
		await tui.waitFor(text => text.includes('stopped 2 VMs'));
		expect(tui.actions.calls.filter(call => call.startsWith('stop')).sort()).toEqual(['stop vm-aaaaaaaa@host-a', 'stop vm-abababab@host-a']);
	});

	it('* again unmarks the rows shown; marks outside the filter stay', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-bbbbbbbb'));
		// host-b's VM sorts last: mark it alone first.
		await tui.press('G', ' ');
		await tui.press('/', ...'host:host-a', KEYS.enter, '*');
		await tui.waitFor(text => text.includes('marked 3 VMs'));
		await tui.press('*');
		await tui.waitFor(text => text.includes('unmarked 3 VMs'));
		await tui.press('/', KEYS.escape);
		await tui.waitFor(() => tui.tableLines().length === 4);
		expect(vmIds(tui.tableLines().filter(line => line.startsWith('*')))).toEqual(['vm-bbbbbbbb']);
	});

	it('says when a filter names a field the screen does not have, instead of quietly showing nothing', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-bbbbbbbb'));
		await tui.press('/', ...'stat:crashed');
		await tui.waitFor(text => text.includes('unknown field stat (matched as text); fields here: state, host, image, group'));
		await tui.press(KEYS.enter);
		await tui.waitFor(text => text.includes('filter: stat:crashed') && text.includes('unknown field stat'));
		expect(tui.tableLines()).toHaveLength(0);
	});
});

describe('the VM table without VMs', () => {
	it('names the hosts that answered, so an empty cloud is not a blank screen', async () => {
		const tui = renderTui([snapshot('host-a', [], ['host-a', 'host-b', 'host-c']), snapshot('host-b', []), snapshot('host-c', [])]);
		await tui.waitFor(text => text.includes('No VMs on 3 hosts (host-a, host-b, host-c). Press n to start one, 2 for the hosts.'));
	});
});

describe('m: live migration', () => {
	it('offers the other hosts, most room first, the cordoned one not pickable; migrates after y and reports in the footer', async () => {
		const tui = renderTui(fleet());
		let gate!: () => void;
		tui.actions.migrationGate = new Promise(resolve => {
			gate = resolve;
		});
		await tui.waitFor(text => text.includes('vm-acacacac'));
		await tui.press('j', 'j');
		await tui.waitFor(text => selectedLine(text).includes('vm-acacacac'));
		await tui.press('m');
		const picker = await tui.waitFor(text => text.includes('Migrate vm-acacacac from host-a to:'));
		const lines = picker.split('\n');
		const hostLines = lines.filter(line => /host-[a-c] /.test(line) && !line.includes('Migrate'));
		// host-c has room (1544 MB free); host-b has the most memory but is cordoned; host-a is the VM's own.
		expect(hostLines.map(line => line.replace(/│/g, '').trim().replace(/^› /, ''))).toEqual(['host-c       1544 MB free, 24 vCPUs, 16 VM slots', 'host-b       cannot: cordoned']);
		expect(selectedLine(picker)).toContain('host-c');
		// The cordoned host cannot be picked.
		await tui.press('j', KEYS.enter);
		await tui.waitFor(text => text.includes('host-b cannot take vm-acacacac: cordoned'));
		await tui.press('k', KEYS.enter);
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('Live-migrate vm-acacacac from host-a to host-c? The guest keeps running. [y/N]');
		await tui.press('y');
		await tui.waitFor(text => text.includes('⟳ migrating vm-acacacac from host-a to host-c'));
		gate();
		await tui.waitFor(text => text.includes('migrated vm-acacacac from host-a to host-c in 4.2 s (guest paused 31 ms)'));
		expect(tui.actions.calls).toContain('migrate vm-acacacac@host-a to host-c');
		expect(tui.tableLines().find(line => line.includes('vm-acacacac'))).toMatch(/host-c\s+vm-acacacac/);
	});

	it('refuses a VM that does not run, says why a migration failed, and Esc cancels', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('m');
		await tui.waitFor(text => text.includes('vm-aaaaaaaa is crashed: only a running VM migrates'));
		await tui.press('j', 'j', 'm');
		await tui.waitFor(text => text.includes('Migrate vm-acacacac'));
		await tui.press(KEYS.escape);
		await tui.waitFor(text => text.includes('migration cancelled'));
		tui.actions.failMigrate = 'the destination host-c died mid-migration: vm-acacacac runs on host-a';
		await tui.press('m', KEYS.enter, 'y');
		await tui.waitFor(text => text.includes('migration of vm-acacacac to host-c failed: the destination host-c died mid-migration'));
		expect(tui.actions.calls.filter(call => call.startsWith('migrate'))).toEqual(['migrate vm-acacacac@host-a to host-c']);
	});
});

describe('the hosts view', () => {
	it('shows every host: state, cordon, VMs/max, vCPUs and memory committed against budget, - for use it does not know', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('H');
		const frame = await tui.waitFor(text => text.includes('kloud [hosts]'));
		expect(frame).toMatch(/HOST\s+STATE\s+VMS\s+VCPUS\s+MEMORY\s+CPU%\s+RSS\s+HEARD/);
		const line = (id: string) => frame.split('\n').find(row => row.includes(` ${id} `) || row.includes(`›${id} `)) ?? '';
		expect(line('host-a')).toMatch(/host-a\s+up\s+3\/16\s+█····· 1\/32\s+██···· 512M\/1\.8G\s+-\s+-\s+0s/);
		expect(line('host-b')).toMatch(/host-b\s+up,cordon\s+1\/16\s+-\s+0\/-\s+·+ 0M\/7\.8G/);
		expect(line('host-c')).toMatch(/host-c\s+up\s+0\/16\s+██···· 8\/32/);
		// The selected host's other facts.
		expect(frame).toContain('host-a · accel tcg · images demo · underlay - · broker - · heartbeat 0s ago · agent up 1h');
		await tui.press('j', 'j');
		await tui.waitFor(text => text.includes('host-c · accel tcg · images demo · underlay 10.99.0.3 · broker 127.0.0.1:5672'));
		await tui.press('H');
		await tui.waitFor(text => text.includes('HOST↑'));
	});

	it('shows the hosts even with no VM at all', async () => {
		const tui = renderTui([snapshot('host-a', [], ['host-a', 'host-b']), snapshot('host-b', [])]);
		await tui.press('2');
		const frame = await tui.waitFor(text => text.includes('kloud [hosts]') && text.includes('host-b'));
		expect(frame).toMatch(/host-a\s+up\s+0\/16/);
	});

	it('c cordons and u uncordons the selected host', async () => {
		const tui = renderTui(fleet());
		await tui.press('H');
		await tui.waitFor(text => text.includes('kloud [hosts]'));
		await tui.press('j', 'j', 'c');
		await tui.waitFor(text => text.includes('cordoned host-c: no new VMs go there'));
		await tui.waitFor(text => /host-c\s+up,cordon/.test(text));
		await tui.press('u');
		await tui.waitFor(text => text.includes('uncordoned host-c: it takes new VMs again'));
		await tui.waitFor(text => /host-c\s+up\s/.test(text));
		expect(tui.actions.calls).toEqual(['cordon host-c', 'refresh', 'uncordon host-c', 'refresh']);
	});

	it('d asks, then drains: progress on the host, the result in the footer; a no sends nothing', async () => {
		const tui = renderTui(fleet());
		tui.actions.drainLines = ['migrated vm-acacacac to host-c in 3.1 s (guest paused 20 ms)'];
		await tui.press('H');
		await tui.waitFor(text => text.includes('kloud [hosts]'));
		await tui.press('d');
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('Drain host-a: cordon it, then live-migrate its running VMs to other hosts? [y/N]');
		await tui.press('n');
		await tui.waitFor(text => text.includes('cancelled'));
		expect(tui.actions.calls).toEqual([]);
		await tui.press('d', 'y');
		await tui.waitFor(text => text.includes('drained host-a: 1 VMs moved, host cordoned'));
		expect(tui.frame()).toMatch(/host-a\s+up,cordon/);
		expect(tui.actions.calls).toEqual(['drain host-a', 'cordon host-a', 'refresh']);

		tui.actions.failDrain = 'host host-a is cordoned but not empty: 1 of 1 VMs stay\ncould not migrate vm-acacacac: no host has room';
		await tui.press('d', 'y');
		await tui.waitFor(text => text.includes('drain of host-a: host host-a is cordoned but not empty: 1 of 1 VMs stay'));
	});

	it('lists migrations it did not start (another TUI, kloud-tui migrate or drain) on both hosts, from the VM lists; STATE says how far; one row at the handover', async () => {
		const migrating = (percent: number, phase: 'disk' | 'ram' | 'switching' = 'ram') => makeVm('vm-acacacac', 'host-a', {createdAt: NOW - 1000, memoryMb: 512, migration: {to: 'host-c', phase, percent, startedAt: NOW - 12_000}});
		const [a, b, c] = fleet();
		const tui = renderTui([{...a!, vms: [a!.vms[0]!, a!.vms[1]!, migrating(42)]}, b!, c!]);
		// The VM table says where to and how far.
		await tui.waitFor(text => text.includes('vm-acacacac'));
		expect(tui.tableLines().find(line => line.includes('vm-acacacac'))).toMatch(/host-a\s+vm-acacacac\s+demo\s+migrating→host-c 42%/);
		await tui.press('H');
		await tui.waitFor(text => text.includes('⟳ migrating vm-acacacac to host-c: ram 42% (12s)'));
		await tui.press('j', 'j');
		await tui.waitFor(text => text.includes('⟳ taking in vm-acacacac from host-a: ram 42% (12s)'));
		await tui.press('k');
		await tui.waitFor(text => text.includes('host-b · accel'));
		expect(tui.frame()).not.toContain('vm-acacacac');

		// A list round moves it on; then the handover: both hosts list it, the destination's copy is the row.
		tui.store.dispatch({type: 'round', at: NOW, snapshots: [{...a!, vms: [a!.vms[0]!, a!.vms[1]!, migrating(100, 'switching')]}, b!, {...c!, vms: [makeVm('vm-acacacac', 'host-c', {pid: 300})]}], missing: []});
		await tui.press('1');
		await tui.waitFor(text => /host-c\s+vm-acacacac\s+demo\s+running/.test(text));
		expect(tui.tableLines().filter(line => line.includes('vm-acacacac'))).toHaveLength(1);

		// Migrated: nothing under way on either host.
		tui.store.dispatch({type: 'round', at: NOW, snapshots: [{...a!, vms: [a!.vms[0]!, a!.vms[1]!]}, b!, {...c!, vms: [makeVm('vm-acacacac', 'host-c', {pid: 300})]}], missing: []});
		await tui.press('2', 'k');
		expect(await tui.waitFor(text => text.includes('host-a · accel'))).not.toContain('⟳');
		await tui.press('j', 'j');
		expect(await tui.waitFor(text => text.includes('host-c · accel'))).not.toContain('⟳');
	});

	it('shows a migration it started itself once, with the progress its source host reports', async () => {
		const tui = renderTui(fleet());
		tui.actions.migrationGate = new Promise(() => {});
		await tui.waitFor(text => text.includes('vm-acacacac'));
		await tui.press('j', 'j', 'm', KEYS.enter, 'y');
		await tui.waitFor(text => text.includes('⟳ migrating vm-acacacac from host-a to host-c'));
		const [a, b, c] = fleet();
		tui.store.dispatch({type: 'round', at: NOW, snapshots: [{...a!, vms: [a!.vms[0]!, a!.vms[1]!, {...a!.vms[2]!, migration: {to: 'host-c', phase: 'disk', percent: 35, startedAt: NOW}}]}, b!, c!], missing: []});
		await tui.press('H');
		const frame = await tui.waitFor(text => text.includes('⟳ migrating vm-acacacac from host-a to host-c: disk 35%'));
		// Its line under host-a, and the footer's: no second line from the VM's migration field.
		expect(frame.split('\n').filter(line => line.includes('vm-acacacac'))).toHaveLength(2);
	});

	it('/ filters hosts by field', async () => {
		const tui = renderTui(fleet());
		await tui.press('H');
		await tui.waitFor(text => text.includes('kloud [hosts]'));
		await tui.press('/', ...'state:cordoned', KEYS.enter);
		const frame = await tui.waitFor(text => text.includes('filter: state:cordoned'));
		expect(frame).toContain('host-b');
		expect(frame).not.toMatch(/host-a\s+up/);
	});
});

const stored = (name: string, size: number, by: string, ts: number, patch: Partial<StoredGroup['spec']> = {}): StoredGroup => ({
	spec: {name, uid: 'abcd1234', image: 'demo', size, min: 1, max: 5, health: {kind: 'none'}, healthGraceSeconds: 90, hostGraceSeconds: 15, ...patch},
	version: ts,
	by,
	ts,
});

describe('the groups view', () => {
	it('shows each group: desired, running, healthy, min, max and its latest scaling; Enter shows its members', async () => {
		const members = [
			makeVm('vm-wwwwwwww', 'host-a', {clientToken: 'grp:web:abcd1234:1:0:0'}),
			makeVm('vm-xxxxxxxx', 'host-b', {clientToken: 'grp:web:abcd1234:1:1:0', state: 'crashed', pid: null}),
		];
		const tui = renderTui([snapshot('host-a', [members[0]!, makeVm('vm-zzzzzzzz', 'host-a')], ['host-a', 'host-b']), snapshot('host-b', [members[1]!])]);
		tui.store.dispatch({type: 'groups', at: NOW, groups: new Map([['web', stored('web', 2, 'ops', NOW - 120_000)], ['db', stored('db', 1, 'ops', NOW - 60_000, {image: 'alpine', uid: 'zzzz9999'})]])});
		tui.store.dispatch({type: 'groups', at: NOW, groups: new Map([['web', stored('web', 3, 'kloud-agent', NOW - 30_000)], ['db', stored('db', 1, 'ops', NOW - 60_000, {image: 'alpine', uid: 'zzzz9999'})]])});
		await tui.press('3');
		const frame = await tui.waitFor(text => text.includes('kloud [groups]'));
		expect(frame).toMatch(/NAME\s+IMAGE\s+DESIRED\s+RUN\s+HEALTHY\s+MIN\s+MAX\s+LAST SCALING/);
		expect(frame).toMatch(/db\s+alpine\s+1\s+0\s+0\s+1\s+5\s+created 1 by ops 1m ago/);
		expect(frame).toMatch(/web\s+demo\s+3\s+1\s+1\s+1\s+5\s+2 → 3 by kloud-agent 30s ago/);
		await tui.press('/', ...'image:demo', KEYS.enter);
		await tui.waitFor(text => !/db\s+alpine/.test(text));
		await tui.press(KEYS.enter);
		await tui.waitFor(text => text.includes('the members of group web'));
		expect(vmIds(tui.tableLines())).toEqual(['vm-wwwwwwww', 'vm-xxxxxxxx']);
	});

	it('says why the controller last scaled a group on load', async () => {
		const tui = renderTui([snapshot('host-a', [])]);
		const scaled = {...stored('web', 4, 'kloud-agent', NOW - 20_000), lastScaling: {from: 3, to: 4, cpuPercent: 83.4, members: 3, windowSeconds: 60, reason: 'above 70%', at: NOW - 20_000}};
		tui.store.dispatch({type: 'groups', at: NOW, groups: new Map([['web', scaled]])});
		await tui.press('3');
		await tui.waitFor(text => /web\s+demo\s+4\s+0\s+0\s+1\s+5\s+3 → 4 20s ago: cpu 83% over 3 \(above 70%\)/.test(text), 'the scaling and its reason');
	});

	it('says how to make one when there is none', async () => {
		const tui = renderTui(fleet());
		await tui.press('3');
		await tui.waitFor(text => text.includes('No groups (kloud-tui group create NAME --image IMAGE --size N).'));
	});
});

describe('the events view', () => {
	const push = (tui: ReturnType<typeof renderTui>, at: number, event: Omit<KloudEvent, 'v' | 'id' | 'ts'>) =>
		tui.store.dispatch({type: 'kloud', at, event: {v: 1, id: 'e', ts: at, ...event} as KloudEvent});

	it('lists who did what, crashes with their exit and hosts going down, newest first; / filters by field', async () => {
		const tui = renderTui(fleet());
		push(tui, NOW + 1000, {type: 'request.handled', from: 'host-a', body: {user: 'alice', request: 'vm.stop', vmId: 'vm-acacacac', ok: true, durationMs: 800}});
		push(tui, NOW + 2000, {type: 'vm.crashed', from: 'host-a', body: {vm: makeVm('vm-aaaaaaaa', 'host-a', {state: 'crashed', pid: null, exit: 'killed by SIGKILL'})}});
		push(tui, NOW + 3000, {type: 'request.handled', from: 'host-b', body: {user: 'bob', request: 'vm.start', detail: 'demo', ok: false, code: 'no_capacity', reason: 'host host-b is cordoned', durationMs: 2}});
		push(tui, NOW + 4000, {type: 'host.down', from: 'host-c', body: {id: 'host-c'}});
		tui.store.dispatch({type: 'tick', now: NOW + 5000});
		await tui.press('4');
		const frame = await tui.waitFor(text => text.includes('kloud [events]') && text.includes('host-c down'));
		const lines = frame.split('\n').filter(line => /\d\d:\d\d:\d\d/.test(line));
		expect(lines.map(line => line.replace(/^.{2}\d\d:\d\d:\d\d\s+\S+\s+/, '').trim())).toEqual([
			'host    host-c down: its agent stopped',
			'request bob: start demo on host-b: refused: no_capacity: host host-b is cordoned',
			'vm      vm-aaaaaaaa crashed on host-a: killed by SIGKILL',
			'request alice: stop vm-acacacac on host-a: done in 0.8 s',
		]);
		await tui.press('/', ...'user:alice', KEYS.enter);
		await tui.waitFor(text => text.includes('filter: user:alice') && !text.includes('bob:'));
		expect(tui.frame()).toContain('alice: stop vm-acacacac');
		await tui.press('/', KEYS.escape, '/', ...'kind:vm', KEYS.enter);
		await tui.waitFor(text => text.includes('filter: kind:vm') && !text.includes('alice:') && text.includes('crashed on host-a'));
	});

	it('keeps each screen\'s filter to itself', async () => {
		const tui = renderTui(fleet());
		await tui.press('/', ...'host:host-b', KEYS.enter);
		await tui.waitFor(() => tui.tableLines().length === 1);
		await tui.press('4');
		await tui.waitFor(text => text.includes('kloud [events]') && !text.includes('filter:'));
		await tui.press('1');
		await tui.waitFor(text => text.includes('filter: host:host-b'));
		expect(vmIds(tui.tableLines())).toEqual(['vm-bbbbbbbb']);
	});
});

describe('help', () => {
	it('lists the keys of the screen it is pressed on, from the key table, and fits 80×24', async () => {
		const tui = renderTui(fleet());
		tui.resize(80);
		await tui.press('?');
		let frame = await tui.waitFor(text => text.includes('kloud-tui keys: VMs'));
		for (const words of ['mark every row the', 'live-migrate the VM', 'graceful stop', 'the hosts: state']) {
			expect(frame).toContain(words);
		}

		expect(frame.split('\n').length).toBeLessThanOrEqual(24);
		await tui.press('x', 'H', '?');
		frame = await tui.waitFor(text => text.includes('kloud-tui keys: hosts'));
		for (const words of ['cordon the host', 'drain the host', 'uncordon the host']) {
			expect(frame).toContain(words);
		}

		await tui.press('x', '3', '?');
		await tui.waitFor(text => text.includes('kloud-tui keys: groups') && text.includes('the group\'s members'));
	});

	it('an unused key in the hosts view does nothing there (x stops nothing)', async () => {
		const tui = renderTui(fleet());
		await tui.press('H');
		await tui.waitFor(text => text.includes('kloud [hosts]'));
		await tui.press('x', 'K', 'D');
		await new Promise(resolve => setTimeout(resolve, 50));
		expect(tui.frame()).not.toContain('[y/N]');
		expect(tui.actions.calls).toEqual([]);
		expect(hostStatus('host-a').id).toBe('host-a');
	});
});

describe('switching screens', () => {
	it('keeps each list\'s selection while another screen is shown', async () => {
		const tui = renderTui(fleet());
		await tui.press('2');
		await tui.waitFor(text => text.includes('kloud [hosts]'));
		await tui.press('j');
		await tui.waitFor(text => selectedLine(text).includes('host-b'));
		await tui.press('1');
		await tui.waitFor(text => text.includes('HOST↑'));
		await tui.press('j', KEYS.tab);
		await tui.waitFor(text => text.includes('kloud [hosts]') && selectedLine(text).includes('host-b'));
	});
});
