/**
 * The README's first command as a new user meets it, in a real terminal (tmux): `npm run demo`
 * brings up three hosts and opens kloud-tui; the user sees the three hosts, starts a VM with `n`,
 * watches it boot in the console view, stops it gracefully with `x`, quits with `q`, and the demo
 * leaves nothing behind. Its own namespace, the tests' prebuilt demo image.
 */
import {randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {brokerUsersStartingWith, exchangeExists, pidByName, pidsMentioning, removeDemoLeftovers} from '../helpers/cloud.js';
import {demoImage} from '../helpers/demo-image.js';
import {openTerminal, type Terminal} from '../helpers/tmux.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The demo's state dir, once the test has read it off the demo's output. */
let workDir: string | undefined;
const namespace = `test-demotui-${randomBytes(3).toString('hex')}`;
let terminal: Terminal | undefined;

beforeAll(async () => {
	const image = await demoImage();
	// As a user types it; CI=1 because CI runners export it and the TUI must still render live.
	const command = `cd ${ROOT} && CI=1 KLOUD_NAMESPACE=${namespace} KLOUD_DEMO_IMAGE=${image.path} npm run --silent demo; echo DEMO-EXITED=$?; sleep 600`;
	terminal = await openTerminal(command, {width: 100, height: 30});
}, 300_000);

afterAll(async () => {
	await terminal?.close();
	await removeDemoLeftovers(namespace, workDir);
}, 30_000);

describe('npm run demo in a terminal', () => {
	it('shows three hosts in the TUI; n starts a VM, Enter watches it boot, x + y powers it off, q leaves nothing behind', async () => {
		const term = terminal!;
		// The demo first boots two VMs of its own and shows the CLI, then opens the TUI.
		// That line is wider than the terminal: read it with the wraps joined.
		const stateDirLine = /state and logs in (\/tmp\/kloud-demo\.\w+)\)/;
		const intro = await term.waitForScreen(text => stateDirLine.test(text.replaceAll('\n', '')), 'the demo starting its agents', 120_000);
		const work = stateDirLine.exec(intro.replaceAll('\n', ''))![1]!;
		workDir = work;
		await term.waitForScreen(text => text.includes('hosts 3/3') && text.includes('· 2 VMs'), 'the TUI with three hosts and the demo\'s two VMs', 180_000);

		await term.keys('n');
		await term.waitForScreen(text => /demo\s+on host-a, host-b, host-c/.test(text), 'the start dialog offering the demo image on the three hosts');
		await term.keys('Enter');
		const started = await term.waitForScreen(text => /started vm-[a-z]{8} on host-[abc]/.test(text), 'the start result', 60_000);
		const [, id, host] = /started (vm-[a-z]{8}) on (host-[abc])/.exec(started)!;
		expect(await pidByName(id!)).toBeDefined();

		// Find it, open it, and watch the boot arrive in the console without pressing a key.
		await term.keys('/', ...id!.slice(3), 'Enter');
		await term.waitForScreen(text => text.includes('1/3 VMs'), 'the filter down to the new VM');
		await term.keys('Enter');
		await term.waitForScreen(text => new RegExp(`id\\s+${id}`).test(text) && text.includes('console (tail)'), 'the detail view');
		const booted = await term.waitForScreen(text => text.includes(`KLOUD-READY hostname=${id}`), 'the boot marker in the console view', 90_000);
		expect(booted).toMatch(new RegExp(`host\\s+${host}`));

		// Back to the table, and a graceful stop: the guest powers itself off.
		await term.keys('Escape');
		await term.waitForScreen(text => text.includes('1/3 VMs') && !text.includes('console (tail)'), 'the table again');
		await term.keys('x');
		await term.waitForScreen(text => text.includes(`${id} on ${host}? [y/N]`), 'the stop confirmation');
		await term.keys('y');
		await term.waitForScreen(text => text.includes(`stopped ${id} on ${host} (powered off)`), 'the graceful stop result', 60_000);
		expect(await pidByName(id!)).toBeUndefined();

		// q: the demo stops its VMs and agents and removes what it made.
		await term.keys('q');
		const after = await term.waitForScreen(text => text.includes('DEMO-EXITED='), 'the demo to end', 120_000);
		expect(after).toContain('DEMO-EXITED=0');
		expect(after).toMatch(/\[demo\] done: agents, VMs, state, broker topology and users removed/);
		expect(existsSync(work)).toBe(false);
		expect(await pidsMentioning(`--namespace ${namespace}`)).toEqual([]);
		expect(await pidsMentioning(`${work}/`)).toEqual([]);
		expect(await exchangeExists(`${namespace}.commands`)).toBe(false);
		expect(await brokerUsersStartingWith(`${namespace}-`)).toEqual([]);
	}, 420_000);
});
