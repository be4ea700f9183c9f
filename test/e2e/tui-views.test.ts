/**
 * kloud-tui's hosts and events views and `m` in a real terminal (tmux): real broker, two real
 * agents, real QEMU. An empty cloud names its hosts; the hosts view shows both with their budgets;
 * `c`/`u` cordon and uncordon a host; `m` live-migrates a VM (no NIC, over 127.0.0.1, as the
 * migration test does) to the other host; the events view tells who did each of those.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import type {Vm} from '../../source/protocol/index.js';
import {CLI_BIN, createCloud, pidByName, type Cloud} from '../helpers/cloud.js';
import {openTerminal, type Terminal} from '../helpers/tmux.js';

let cloud: Cloud;
let terminal: Terminal;
const keys = async (...keys: string[]) => terminal.keys(...keys);
const waitForScreen = async (predicate: (text: string) => boolean, what: string, timeoutMs?: number) => terminal.waitForScreen(predicate, what, timeoutMs);
const agentArgs = ['--network-default', 'none', '--memory', '128', '--migration-address', '127.0.0.1'];

beforeAll(async () => {
	cloud = await createCloud('tuiv');
	await Promise.all([cloud.startAgent('host-a', agentArgs), cloud.startAgent('host-b', agentArgs)]);
	const command = `${process.execPath} ${CLI_BIN} --amqp ${cloud.amqpUrl} --namespace ${cloud.namespace} --refresh 1; echo TUI-EXITED=$?; sleep 600`;
	terminal = await openTerminal(command, {width: 110, height: 30});
}, 60_000);

afterAll(async () => {
	await terminal?.close();
	await cloud?.cleanup();
}, 60_000);

describe('kloud-tui views in a real terminal', () => {
	it('shows the hosts of an empty cloud, cordons and uncordons one, migrates a VM with m, and tells who did what', async () => {
		// The broker's user (the cloud's), as the agents saw it on each request.
		const user = new URL(cloud.amqpUrl).username;
		await waitForScreen(text => text.includes('No VMs on 2 hosts (host-a, host-b)'), 'the empty table naming the hosts', 30_000);

		await keys('2');
		const hosts = await waitForScreen(text => text.includes('kloud [hosts]') && /host-b\s+up\s+0\/16/.test(text), 'the hosts view');
		// The agents report their budgets: a vCPU bar and a memory bar with figures.
		expect(hosts).toMatch(/host-a\s+up\s+0\/16\s+·+ 0\/\d+\s+·+ 0M\/[\d.]+G/);
		expect(hosts).toMatch(/host-a · accel tcg · images blank/);

		await keys('c');
		await waitForScreen(text => text.includes('cordoned host-a: no new VMs go there') && /host-a\s+up,cordon/.test(text), 'host-a cordoned');
		// The agent says so too, to everyone: a start there is refused.
		const refused = await cloud.cli(['start', '--image', 'blank', '--host', 'host-a']);
		expect(refused.code).not.toBe(0);
		expect(refused.stderr).toContain('cordoned');
		await keys('u');
		await waitForScreen(text => text.includes('uncordoned host-a') && /host-a\s+up\s+0\/16/.test(text), 'host-a uncordoned');

		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-a']);
		await keys('1');
		await waitForScreen(text => new RegExp(`host-a\\s+${vm.id}\\s+blank\\s+running`).test(text), 'the VM on host-a');
		await keys('m');
		await waitForScreen(text => text.includes(`Migrate ${vm.id} from host-a to:`) && /› host-b\s+\d+ MB free/.test(text), 'the host picker with host-b first');
		await keys('Enter');
		await waitForScreen(text => text.includes(`Live-migrate ${vm.id} from host-a to host-b? The guest keeps running. [y/N]`), 'the question');
		await keys('y');
		await waitForScreen(text => text.includes(`migrated ${vm.id} from host-a to host-b`), 'the migration result', 120_000);
		await waitForScreen(text => new RegExp(`host-b\\s+${vm.id}\\s+blank\\s+running`).test(text), 'the VM on host-b');
		const listed = await cloud.cliJson<{vms: Vm[]}>(['list', '--json']);
		expect(listed.vms.map(one => `${one.id}@${one.host}:${one.state}`)).toEqual([`${vm.id}@host-b:running`]);
		// Still one QEMU for it, now under host-b's state dir.
		expect(await pidByName(vm.id)).toBeDefined();

		await keys('4');
		const events = await waitForScreen(text => text.includes('kloud [events]') && text.includes(`${user}: migrate ${vm.id} from host-a to host-b: done in`), 'the migration in the events');
		expect(events).toContain(`${user}: cordon host-a: done`);
		expect(events).toContain(`${user}: uncordon host-a: done`);
		expect(events).toContain(`${user}: start blank → ${vm.id} on host-a: done`);
		expect(events).toContain(`${user}: start blank on host-a: refused: no_capacity: host host-a is cordoned`);
		await keys('/', ...'type:request.vm.migrate', 'Enter');
		await waitForScreen(text => text.includes('filter: type:request.vm.migrate') && !text.includes('cordon host-a'), 'the events filtered to the migration');

		// The groups view reads the groups stream: a group made with the CLI shows up, its member started by the controller.
		const created = await cloud.cli(['group', 'create', 'web', '--image', 'blank', '--size', '1', '--max', '2']);
		expect(created.code, created.stderr).toBe(0);
		await keys('3');
		await waitForScreen(text => text.includes('kloud [groups]') && /web\s+blank\s+1\s+1\s+1\s+0\s+2\s+created 1 by /.test(text), 'the group with its member running', 60_000);
		await keys('4', '/', 'Escape');
		await waitForScreen(text => text.includes(`group web created by ${user}: 1 × blank (min 0, max 2)`) && text.includes('(controller on host-'), 'the group and the controller\'s start in the events');

		await keys('q');
		await waitForScreen(text => text.includes('TUI-EXITED=0'), 'the TUI to exit');
	}, 300_000);
});
