/**
 * kloud-tui in a real terminal (tmux): real broker, two agents, real QEMU. Start a VM with n +
 * Enter, find it with the filter, kill it with K + y, quit, and find the terminal as it was.
 */
import {userInfo} from 'node:os';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {CLI_BIN, closeConnections, createCloud, pidByName, pidWithEnv, type Cloud} from '../helpers/cloud.js';
import {openTerminal, type Terminal} from '../helpers/tmux.js';

let cloud: Cloud;
let terminal: Terminal;
const keys = async (...keys: string[]) => terminal.keys(...keys);
const screen = async () => terminal.screen();
const waitForScreen = async (predicate: (text: string) => boolean, what: string, timeoutMs?: number) => terminal.waitForScreen(predicate, what, timeoutMs);

beforeAll(async () => {
	cloud = await createCloud('tui');
	await Promise.all([cloud.startAgent('host-a'), cloud.startAgent('host-b')]);
	// CI=1: the TUI must render live in a terminal even where CI is exported (Ink alone would not).
	const command = `printf 'BEFORE-TUI\\n'; CI=1 KLOUD_TEST_TUI=${cloud.namespace} ${process.execPath} ${CLI_BIN} --amqp ${cloud.amqpUrl} --namespace ${cloud.namespace} --refresh 30; echo TUI-EXITED=$?; sleep 600`;
	terminal = await openTerminal(command, {width: 100, height: 30});
});

afterAll(async () => {
	await terminal?.close();
	await cloud?.cleanup();
});

describe('kloud-tui in a real terminal', () => {
	it('starts a VM with n + Enter, kills it after filtering with K + y, and restores the terminal on q', async () => {
		// Under load a host may miss the first round; rounds are 30 s apart here, so ask for another.
		let lastRefresh = Date.now();
		await waitForScreen(text => {
			if (!text.includes('hosts 2/2') && Date.now() - lastRefresh > 3000) {
				lastRefresh = Date.now();
				void keys('r');
			}

			return text.includes('hosts 2/2');
		}, 'both hosts in the header', 20_000);
		expect(await screen()).toContain('No VMs on 2 hosts (host-a, host-b). Press n to start one, 2 for the hosts.');

		await keys('n');
		await waitForScreen(text => /blank\s+on host-a, host-b/.test(text), 'the start dialog with the blank image');
		await keys('Enter');
		const started = await waitForScreen(text => /started vm-[a-z]{8} on host-[ab]/.test(text), 'the start result');
		const [, id, host] = /started (vm-[a-z]{8}) on (host-[ab])/.exec(started)!;
		expect(await pidByName(id!)).toBeDefined();
		await waitForScreen(text => new RegExp(`${host}\\s+${id}\\s+blank\\s+running`).test(text), 'the VM row');

		// A second VM, so the filter has something to leave out.
		await keys('n');
		// Enter starts the highlighted image: wait until the images round has filled the dialog.
		await waitForScreen(text => /blank\s+on host-a, host-b/.test(text), 'the start dialog with the blank image');
		await keys('Enter');
		await waitForScreen(text => (text.match(/vm-[a-z]{8}\s+blank\s+running/g) ?? []).length === 2, 'two VM rows');

		await keys('/', ...id!.slice(3), 'Enter');
		await waitForScreen(text => text.includes('1/2 VMs'), 'the filter down to one VM');
		await keys('K');
		await waitForScreen(text => text.includes(`Kill (SIGKILL, no shutdown) ${id} on ${host}? [y/N]`), 'the kill confirmation');
		await keys('y');
		// A killed VM is kept: still in the table, stopped.
		await waitForScreen(text => text.includes(`killed ${id} on ${host}`) && new RegExp(`${id}\\s+blank\\s+stopped`).test(text), 'the kill result');
		expect(await pidByName(id!)).toBeUndefined();

		await keys('/', 'Escape');
		await waitForScreen(text => text.includes('· 2 VMs'), 'the filter cleared');
		// Rounds are 30 s apart here: a VM started elsewhere must arrive through the pushed events.
		const cliStarted = performance.now();
		const other = await cloud.cliJson<{id: string}>(['start', '--image', 'blank', '--host', 'host-b']);
		await waitForScreen(text => text.includes(other.id), 'the CLI-started VM pushed into the table', 8000);
		// Well before the next round (30 s): it came by event (about a second here, more under CI load).
		expect(performance.now() - cliStarted).toBeLessThan(10_000);

		// The broker drops the TUI's connection: a banner, then it reconnects and carries on.
		// This TUI's own connection (`kloud-tui@<user>:<pid>`): other tests' CLIs share the broker.
		const tuiPid = await pidWithEnv('KLOUD_TEST_TUI', cloud.namespace);
		expect(tuiPid).toBeDefined();
		expect(await closeConnections(`kloud-tui@${userInfo().username}:${tuiPid}`)).toBe(1);
		// The banner while it is away, or (a reconnect can beat a screen capture under load) the recall once it is back.
		await waitForScreen(text => text.includes('broker connection lost'), 'the disconnected banner or the recall of the drop', 8000);
		await waitForScreen(text => text.includes('● connected') && text.includes('↻ broker connection lost'), 'the reconnect (and the recall of the drop)', 10_000);
		await cloud.cliJson(['stop', other.id, '--kill']);
		await waitForScreen(text => new RegExp(`${other.id}\\s+blank\\s+stopped`).test(text), 'the VM stopped elsewhere, pushed after the reconnect', 8000);
		await cloud.cliJson(['delete', other.id, '--yes']);
		await waitForScreen(text => !text.includes(other.id), 'the deleted VM gone', 8000);

		await keys('q');
		const after = await waitForScreen(text => text.includes('TUI-EXITED=0'), 'the TUI to exit');
		expect(after).toContain('BEFORE-TUI');
		expect(after).not.toContain('HOST');
	});
});
