/** The TUI driven by keys against a fake feed: what an operator sees and what each key does. */
import {afterEach, describe, expect, it} from 'vitest';
import {cleanup} from 'ink-testing-library';
import {KEYS, NOW, makeVm, renderTui, snapshot} from '../helpers/tui.js';

afterEach(() => {
	cleanup();
});

const fleet = () => [
	snapshot('host-b', [makeVm('vm-bbbbbbbb', 'host-b', {image: 'alpine', memoryMb: 512, cpus: 2})], ['host-a', 'host-b']),
	snapshot('host-a', [makeVm('vm-aaaaaaaa', 'host-a'), makeVm('vm-cccccccc', 'host-a', {state: 'crashed', pid: null, exit: 'killed by SIGKILL', createdAt: NOW - 1000})]),
];

const selectedLine = (frame: string) => frame.split('\n').find(line => line.includes('›')) ?? '';

describe('the VM table', () => {
	it('shows every VM of every host with its columns, sorted by host, and a header with counts', async () => {
		const tui = renderTui(fleet());
		const frame = await tui.waitFor(text => text.includes('vm-bbbbbbbb'));
		expect(frame).toMatch(/HOST↑\s+VM\s+IMAGE\s+STATE\s+IP\s+CPU%\s+MEM\s+UPTIME/);
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-aaaaaaaa', 'vm-cccccccc', 'vm-bbbbbbbb']);
		expect(tui.tableLines()[2]).toMatch(/host-b\s+vm-bbbbbbbb\s+alpine\s+running\s+2cpu\s+512M\s+1m/);
		expect(tui.tableLines()[1]).toContain('crashed');
		expect(frame).toContain('hosts 2/2 · 3 VMs');
		expect(frame).toContain('refreshed 0s ago · amqp://guest:***@127.0.0.1:5672 ns kloud');
	});

	it('marks a host that missed the last round as stale with its age, and as down after a minute', async () => {
		const tui = renderTui(fleet());
		tui.store.dispatch({type: 'round', at: NOW + 4000, snapshots: [fleet()[1]!], missing: ['host-b']});
		tui.store.dispatch({type: 'tick', now: NOW + 12_000});
		let frame = await tui.waitFor(text => text.includes('stale'));
		expect(frame).toContain('host-b stale (answered 12s ago)');
		expect(frame).toContain('hosts 1/2');
		expect(tui.tableLines().find(line => line.includes('vm-bbbbbbbb'))).toContain('host-b 12s');
		tui.store.dispatch({type: 'tick', now: NOW + 61_000});
		frame = await tui.waitFor(text => text.includes('host-b down'));
		expect(tui.tableLines().some(line => line.includes('vm-bbbbbbbb'))).toBe(true);
	});

	it('moves with arrows, j/k, g/G and PgDn, and keeps the selection on the same VM across refreshes', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-bbbbbbbb'));
		await tui.waitFor(text => selectedLine(text).includes('vm-aaaaaaaa'), 'the selection on vm-aaaaaaaa');
		await tui.press('j');
		await tui.waitFor(text => selectedLine(text).includes('vm-cccccccc'), 'the selection on vm-cccccccc');
		await tui.press(KEYS.down);
		await tui.waitFor(text => selectedLine(text).includes('vm-bbbbbbbb'), 'the selection on vm-bbbbbbbb');
		await tui.press('k', 'g');
		await tui.waitFor(text => selectedLine(text).includes('vm-aaaaaaaa'), 'the selection on vm-aaaaaaaa');
		await tui.press('G');
		await tui.waitFor(text => selectedLine(text).includes('vm-bbbbbbbb'), 'the selection on vm-bbbbbbbb');
		await tui.press(KEYS.up, KEYS.pageDown);
		await tui.waitFor(text => selectedLine(text).includes('vm-bbbbbbbb'), 'the selection on vm-bbbbbbbb');

		await tui.press('g', 'j');
		await tui.waitFor(text => selectedLine(text).includes('vm-cccccccc'), 'the selection on vm-cccccccc');
		// A new VM sorts in above the selection: the selection stays on vm-cccccccc.
		tui.store.dispatch({type: 'round', at: NOW + 2000, snapshots: [snapshot('host-a', [makeVm('vm-aaaaaaaa', 'host-a'), makeVm('vm-abababab', 'host-a', {createdAt: NOW - 90_000}), makeVm('vm-cccccccc', 'host-a', {createdAt: NOW - 1000})]), fleet()[0]!], missing: []});
		await tui.waitFor(text => text.includes('vm-abababab'));
		await tui.waitFor(text => selectedLine(text).includes('vm-cccccccc'), 'the selection on vm-cccccccc');
	});

	it('n opens a dialog of the advertised images with their hosts; Enter starts the highlighted one', async () => {
		const tui = renderTui(fleet());
		await tui.press('n');
		const dialog = await tui.waitFor(text => text.includes('on host-a, host-b'));
		expect(dialog).toContain('Start a VM');
		expect(dialog).toMatch(/alpine\s+on host-a/);
		await tui.press(KEYS.down, KEYS.enter);
		await tui.waitFor(text => text.includes('started vm-newnewnw on host-a'));
		expect(tui.actions.calls).toContain('start {"image":"demo"}');
		expect(tui.tableLines().some(line => line.includes('vm-newnewnw'))).toBe(true);
	});

	it('Tab reaches host, memory and cpus; Esc cancels without starting', async () => {
		const tui = renderTui(fleet());
		await tui.press('n');
		await tui.waitFor(text => text.includes('alpine'));
		await tui.press(KEYS.tab, ...'host-b', KEYS.tab, ...'512', KEYS.tab, '2', KEYS.enter);
		await tui.waitFor(text => text.includes('started'));
		expect(tui.actions.calls).toContain('start {"image":"alpine","host":"host-b","memoryMb":512,"cpus":2}');

		await tui.press('n');
		await tui.waitFor(text => text.includes('Start a VM'));
		await tui.press(KEYS.escape);
		await tui.waitFor(text => text.includes('start cancelled'));
		expect(tui.actions.calls.filter(call => call.startsWith('start'))).toHaveLength(1);
	});

	it('Tab reaches network: ←/→ and letters pick a mode, back round to the host default', async () => {
		const tui = renderTui(fleet());
		await tui.press('n');
		await tui.waitFor(text => text.includes('alpine'));
		await tui.press(KEYS.tab, KEYS.tab, KEYS.tab, KEYS.tab);
		await tui.waitFor(text => /› network\s+\S*\s*host default/.test(text));
		await tui.press(KEYS.right, KEYS.right);
		await tui.waitFor(text => /› network\s+public/.test(text));
		await tui.press(KEYS.left, KEYS.left);
		await tui.waitFor(text => /› network\s+host default/.test(text));
		await tui.press('u', KEYS.enter);
		await tui.waitFor(text => text.includes('started'));
		expect(tui.actions.calls).toContain('start {"image":"alpine","network":"user"}');
	});

	it('Tab reaches the restart policy: ←/→ and letters pick one, the default is on-failure', async () => {
		const tui = renderTui(fleet());
		await tui.press('n');
		await tui.waitFor(text => text.includes('alpine'));
		await tui.press(KEYS.tab, KEYS.tab, KEYS.tab, KEYS.tab, KEYS.tab);
		await tui.waitFor(text => /› restart\s+\S*\s*on-failure \(/.test(text));
		await tui.press(KEYS.right);
		await tui.waitFor(text => /› restart\s+no\b/.test(text));
		await tui.press('a', KEYS.enter);
		await tui.waitFor(text => text.includes('started'));
		expect(tui.actions.calls).toContain('start {"image":"alpine","restart":"always"}');
	});

	it('x asks y/N and stops the selected VM on its host; any other key cancels', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('x');
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('Stop (ACPI power-off, then kill after the grace period) vm-aaaaaaaa on host-a? [y/N]');
		await tui.press('n');
		await tui.waitFor(text => text.includes('cancelled'));
		expect(tui.actions.calls).toEqual([]);

		await tui.press('x', 'y');
		// How it ended, as the agent said: the guest powered itself off.
		await tui.waitFor(text => text.includes('stopped vm-aaaaaaaa on host-a (powered off)'));
		expect(tui.actions.calls).toContain('stop vm-aaaaaaaa@host-a');
		// The VM is kept: still in the table, stopped, with why.
		expect(tui.tableLines().find(line => line.includes('vm-aaaaaaaa'))).toMatch(/vm-aaaaaaaa\s+demo\s+stopped \(powered off\)/);
	});

	it('b boots a stopped VM again, without a question', async () => {
		const tui = renderTui([snapshot('host-a', [makeVm('vm-aaaaaaaa', 'host-a', {state: 'stopped', pid: null, uptimeSeconds: null, exit: 'powered off'})])]);
		await tui.waitFor(text => /vm-aaaaaaaa\s+demo\s+stopped/.test(text));
		await tui.press('b');
		await tui.waitFor(text => text.includes('booted vm-aaaaaaaa on host-a'));
		expect(tui.actions.calls).toEqual(['boot vm-aaaaaaaa@host-a', 'refresh']);
		expect(tui.tableLines()[0]).toMatch(/vm-aaaaaaaa\s+demo\s+running/);
	});

	it('R asks first: y reboots (ACPI), h resets, any other key cancels', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('R');
		expect(await tui.waitFor(text => text.includes('[y: ACPI'))).toContain('Reboot vm-aaaaaaaa on host-a? [y: ACPI reboot, h: hard reset, N]');
		await tui.press('n');
		await tui.waitFor(text => text.includes('cancelled'));
		expect(tui.actions.calls).toEqual([]);
		await tui.press('R', 'y');
		await tui.waitFor(text => text.includes('rebooted vm-aaaaaaaa on host-a'));
		await tui.press('R', 'h');
		await tui.waitFor(text => text.includes('reset vm-aaaaaaaa on host-a'));
		expect(tui.actions.calls.filter(call => call !== 'refresh')).toEqual(['reboot vm-aaaaaaaa@host-a', 'hard-reboot vm-aaaaaaaa@host-a']);
	});

	it('D names what is lost before it deletes; a no keeps the VM, a y removes it from the table', async () => {
		const tui = renderTui([snapshot('host-a', [makeVm('vm-aaaaaaaa', 'host-a', {ip: '10.77.0.5'}), makeVm('vm-bbbbbbbb', 'host-a', {createdAt: NOW})])]);
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('D');
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('delete vm-aaaaaaaa on host-a: its disk, seed and IP 10.77.0.5 are lost [y/N]');
		await tui.press(KEYS.enter);
		await tui.waitFor(text => text.includes('cancelled'));
		expect(tui.actions.calls).toEqual([]);
		expect(tui.tableLines()).toHaveLength(2);
		await tui.press('D', 'y');
		await tui.waitFor(text => text.includes('deleted vm-aaaaaaaa on host-a'));
		expect(tui.actions.calls).toContain('delete vm-aaaaaaaa@host-a');
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-bbbbbbbb']);
	});

	it('D deletes every marked VM after one question', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press(' ', ' ', 'D');
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('delete 2 VMs: their disks, seeds and IPs are lost [y/N]');
		await tui.press('y');
		await tui.waitFor(text => text.includes('deleted 2 VMs'));
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-bbbbbbbb']);
	});

	it('STATE says why a VM is down: restarts made and the last exit', async () => {
		const tui = renderTui([snapshot('host-a', [makeVm('vm-aaaaaaaa', 'host-a', {state: 'crashed', pid: null, restarts: {count: 3, limit: 5}, exit: 'exit 1'})])]);
		tui.resize(120);
		await tui.waitFor(text => text.includes('crashed (restarts 3/5, exit 1)'));
	});

	it('space marks rows; K then kills every marked VM after one confirmation', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		// Marking moves down a row, so two presses mark the first two rows.
		await tui.press(' ', ' ');
		expect(tui.tableLines().filter(line => line.startsWith('*')).map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-aaaaaaaa', 'vm-cccccccc']);
		await tui.press('K');
		expect(await tui.waitFor(text => text.includes('[y/N]'))).toContain('Kill (SIGKILL, no shutdown) 2 VMs? [y/N]');
		await tui.press('y');
		await tui.waitFor(text => text.includes('killed 2 VMs'));
		expect(tui.actions.calls.filter(call => call.startsWith('kill')).sort()).toEqual(['kill vm-aaaaaaaa@host-a', 'kill vm-cccccccc@host-a']);
		expect(tui.tableLines().filter(line => line.startsWith('*'))).toHaveLength(0);
	});

	it('shows a failed stop as an error line', async () => {
		const tui = renderTui(fleet());
		tui.actions.failStop = 'vm-aaaaaaaa';
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('x', 'y');
		await tui.waitFor(text => text.includes('failed: vm-aaaaaaaa: no VM vm-aaaaaaaa on host host-a'));
	});

	it('/ narrows the rows as you type (substring over all columns); Enter keeps it, Esc in / clears it', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('/', ...'alp');
		await tui.waitFor(text => text.includes('/alp'));
		expect(tui.tableLines()).toHaveLength(1);
		expect(tui.tableLines()[0]).toContain('vm-bbbbbbbb');
		await tui.press(KEYS.enter);
		await tui.waitFor(text => text.includes('filter: alp'));
		expect(tui.frame()).toContain('1/3 VMs');
		await tui.press('/', KEYS.backspace, KEYS.backspace, KEYS.backspace, ...'crash', KEYS.enter);
		await tui.waitFor(text => text.includes('filter: crash'));
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-cccccccc']);
		await tui.press('/', KEYS.escape);
		await tui.waitFor(() => tui.tableLines().length === 3);
	});

	it('reads keys that arrive in one chunk (fast typing, a loaded box, SSH) one by one: "/alp⏎" filters, and nothing in it opens a dialog', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		// One terminal read holding the filter key, the text and Enter; "n" inside would start a VM if read as a table key.
		await tui.press('/alpn\r');
		await tui.press('/', KEYS.backspace, '\r');
		await tui.waitFor(text => text.includes('filter: alp'));
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-bbbbbbbb']);
		expect(tui.frame()).toContain('1/3 VMs');
		expect(tui.actions.calls.filter(call => call.startsWith('start') || call.startsWith('images'))).toEqual([]);
	});

	it('s cycles the sort column and S reverses it', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('s');
		await tui.waitFor(text => text.includes('VM↑'));
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-aaaaaaaa', 'vm-bbbbbbbb', 'vm-cccccccc']);
		await tui.press('S');
		await tui.waitFor(text => text.includes('VM↓'));
		expect(tui.tableLines().map(line => line.match(/vm-[a-z]{8}/)![0])).toEqual(['vm-cccccccc', 'vm-bbbbbbbb', 'vm-aaaaaaaa']);
	});

	it('Enter opens the details of the selected VM with its console tail; Esc goes back', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('j', KEYS.enter);
		const detail = await tui.waitFor(text => text.includes('KLOUD-READY'));
		expect(detail).toMatch(/id\s+vm-cccccccc/);
		expect(detail).toMatch(/state\s+crashed \(killed by SIGKILL\)/);
		expect(detail).toContain('Booting...');
		expect(tui.actions.calls).toContain('console vm-cccccccc');
		await tui.press(KEYS.escape);
		await tui.waitFor(text => text.includes('HOST↑'));
	});

	it('the detail view follows a running VM\'s console as it boots, and stops following once the VM has ended', async () => {
		const tui = renderTui(fleet(), [], {consoleFollowMs: 30});
		tui.actions.consoleText = 'SeaBIOS\r\n';
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press(KEYS.enter);
		await tui.waitFor(text => /id\s+vm-aaaaaaaa/.test(text) && text.includes('SeaBIOS'));
		// The guest prints more: it appears without a key.
		tui.actions.consoleText = 'SeaBIOS\r\nLinux version 6.1\r\nKLOUD-READY hostname=vm-aaaaaaaa ip=10.0.0.9\r\n';
		await tui.waitFor(text => text.includes('KLOUD-READY hostname=vm-aaaaaaaa'), 'the console to follow the boot');
		// Paused: the console holds still too.
		await tui.press('p');
		await tui.waitFor(text => text.includes('PAUSED'));
		tui.actions.consoleText += 'late line\r\n';
		await new Promise(resolve => setTimeout(resolve, 150));
		expect(tui.frame()).not.toContain('late line');
		await tui.press('p');
		await tui.waitFor(text => text.includes('late line') && !text.includes('PAUSED'), 'the console after resuming');

		// Once the VM has stopped there is nothing more to follow: no more console requests.
		tui.store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'host-a', ts: NOW, type: 'vm.stopped', body: {vm: makeVm('vm-aaaaaaaa', 'host-a', {state: 'stopped', pid: null, exit: 'powered off'})}}});
		await tui.waitFor(text => /state\s+stopped \(powered off\)/.test(text) || text.includes('That VM is gone.'), 'the stopped state');
		await new Promise(resolve => setTimeout(resolve, 60));
		const requests = tui.actions.calls.filter(call => call === 'console vm-aaaaaaaa').length;
		await new Promise(resolve => setTimeout(resolve, 200));
		expect(tui.actions.calls.filter(call => call === 'console vm-aaaaaaaa').length).toBe(requests);
		tui.instance.unmount();
	});

	it('p pauses live updates (shown in the header) and resumes them', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('p');
		await tui.waitFor(text => text.includes('PAUSED'));
		tui.store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'host-a', ts: NOW, type: 'vm.started', body: {vm: makeVm('vm-dddddddd', 'host-a')}}});
		await new Promise(resolve => setTimeout(resolve, 50));
		expect(tui.frame()).not.toContain('vm-dddddddd');
		await tui.press('p');
		await tui.waitFor(text => text.includes('vm-dddddddd') && !text.includes('PAUSED'));
	});

	it('r asks for a refresh now; ? shows the keys', async () => {
		const tui = renderTui(fleet());
		await tui.press('r');
		expect(tui.actions.calls).toContain('refresh');
		await tui.press('?');
		expect(await tui.waitFor(text => text.includes('kloud-tui keys'))).toContain('graceful stop');
		await tui.press('x');
		await tui.waitFor(text => text.includes('HOST↑'));
		expect(tui.frame()).not.toContain('[y/N]');
	});

	it('fits 80 columns with every column, drops low-priority columns when narrower, and follows resizes', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		tui.resize(80);
		await new Promise(resolve => setTimeout(resolve, 50));
		const frame = tui.frame();
		expect(frame.split('\n').every(line => line.length <= 80)).toBe(true);
		expect(frame).toMatch(/HOST↑\s+VM\s+IMAGE\s+STATE\s+IP\s+CPU%\s+MEM\s+UPTIME/);
		tui.resize(60);
		const narrow = await tui.waitFor(text => !text.includes('UPTIME'));
		expect(narrow.split('\n').every(line => line.length <= 60)).toBe(true);
		expect(narrow).toMatch(/HOST↑\s+VM\s+IMAGE\s+STATE\s+MEM/);
		tui.resize(40);
		const tiny = await tui.waitFor(text => !text.includes('IMAGE'));
		expect(tiny).toContain('vm-aaaaaaaa');
		expect(tiny.split('\n').every(line => line.length <= 40)).toBe(true);
	});

	it('says when the broker connection is lost and keeps the last table visible', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		tui.store.dispatch({type: 'connection', connection: {status: 'disconnected', error: 'connection closed', retryAt: NOW + 3000}});
		const frame = await tui.waitFor(text => text.includes('broker connection lost'));
		expect(frame).toContain('⚠ broker connection lost (connection closed), retrying in 3s; showing the last table');
		expect(frame).toContain('✕ disconnected');
		expect(tui.tableLines()).toHaveLength(3);
		tui.store.dispatch({type: 'tick', now: NOW + 2000});
		tui.store.dispatch({type: 'connection', connection: {status: 'connected'}});
		// Back: the banner goes, and a line recalls the drop for a minute (an operator who looked away still learns of it).
		await tui.waitFor(text => text.includes('● connected') && !text.includes('⚠'));
		tui.store.dispatch({type: 'connection', connection: {status: 'connected', broker: '127.0.0.1:5702'}});
		await tui.waitFor(text => text.includes('● connected to 127.0.0.1:5702'));
		expect(tui.frame()).toContain('↻ broker connection lost 2s ago (connection closed), back after 2s');
		tui.store.dispatch({type: 'tick', now: NOW + 2000 + 61_000});
		await tui.waitFor(text => !text.includes('↻'), 'the recall of the drop gone after a minute');
	});

	it('q quits: the app is gone, so a VM that arrives afterwards is never drawn', async () => {
		const tui = renderTui(fleet());
		await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
		await tui.press('q');
		tui.store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'host-a', ts: NOW, type: 'vm.started', body: {vm: makeVm('vm-dddddddd', 'host-a')}}});
		await new Promise(resolve => setTimeout(resolve, 150));
		expect(tui.frame()).not.toContain('vm-dddddddd');
	});
});
