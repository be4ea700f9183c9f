/**
 * The one-command demo, non-interactively: `scripts/demo.sh --check` (what `npm run demo -- --check`
 * runs) brings up three agents, boots one demo VM with user-data, lists it across the three hosts,
 * reads its console, powers it off gracefully, and tears everything down. Run in a namespace of its
 * own with the tests' image cache; afterwards nothing of it may be left: processes, state, topology.
 */
import {spawn} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {brokerUsersStartingWith, exchangeExists, pidsMentioning, removeDemoLeftovers} from '../helpers/cloud.js';
import {demoImage} from '../helpers/demo-image.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The demo's state dir, once the test has read it off the demo's output. */
let workDir: string | undefined;
const namespace = `test-demo-${randomBytes(3).toString('hex')}`;
const TIMEOUT_MS = 150_000;
/** The tests' shared demo image, handed to the script prebuilt (its own builder run would fight over the cache). */
let imagePath = '';

beforeAll(async () => {
	imagePath = (await demoImage()).path;
}, 300_000);

afterAll(async () => {
	await removeDemoLeftovers(namespace, workDir);
}, 30_000);

describe('npm run demo -- --check', () => {
	it('brings up three hosts, boots a VM with user-data, lists, reads and powers it off, and leaves nothing behind', async () => {
		const child = spawn('bash', ['scripts/demo.sh', '--check'], {
			cwd: ROOT,
			stdio: ['ignore', 'pipe', 'pipe'],
			env: {...process.env, KLOUD_NAMESPACE: namespace, KLOUD_DEMO_IMAGE: imagePath, NO_COLOR: '1'},
		});
		let output = '';
		child.stdout.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		child.stderr.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		const started = performance.now();
		// SIGTERM lets the script's trap tear down what it started.
		const timer = setTimeout(() => child.kill('SIGTERM'), TIMEOUT_MS);
		const code = await new Promise<number | null>(resolve => child.once('exit', exitCode => resolve(exitCode)));
		clearTimeout(timer);
		console.info(`[demo --check] exit ${code} after ${Math.round(performance.now() - started)} ms`);

		expect(code, output).toBe(0);
		expect(output).toMatch(/starting agents host-a host-b host-c in namespace test-demo-/);
		// Broker users of its own, never guest: the agents' and the operator's, deleted at the end.
		const users = /broker users (\S+) (\S+) \(the agents/.exec(output)?.slice(1);
		expect(users, output).toEqual([expect.stringMatching(new RegExp(`^${namespace}-agent-[0-9a-f]{6}$`)), expect.stringMatching(new RegExp(`^${namespace}-ops-[0-9a-f]{6}$`))]);
		expect(output).toContain(`deleting the broker users ${users!.join(' ')}`);
		expect(output).toMatch(/^host-a\s+up/m);
		expect(output).toMatch(/^host-c\s+up/m);
		const id = /started (vm-[a-z]{8}) on host-[abc]/.exec(output)?.[1];
		expect(id, output).toBeDefined();
		expect(output).toContain(`KLOUD-READY hostname=${id} ip=10.0.2.15`);
		expect(output).toMatch(new RegExp(`^hello from user-data on ${id}: kernel `, 'm'));
		expect(output).toContain('"exit":"powered off"');
		expect(output).toContain('check passed');
		expect(output).toMatch(/\[demo\] done: agents, VMs, state, broker topology and users removed/);

		// Nothing left: state dir, agents, QEMU, the namespace's exchanges.
		const work = /state and logs in (\/tmp\/kloud-demo\.\w+)/.exec(output)?.[1];
		workDir = work;
		expect(work, output).toBeDefined();
		expect(existsSync(work!)).toBe(false);
		expect(await pidsMentioning(`--namespace ${namespace}`)).toEqual([]);
		expect(await pidsMentioning(`${work}/`)).toEqual([]);
		expect(await exchangeExists(`${namespace}.commands`)).toBe(false);
		expect(await exchangeExists(`${namespace}.events`)).toBe(false);
		expect(await brokerUsersStartingWith(`${namespace}-`)).toEqual([]);
	}, TIMEOUT_MS + 30_000);
});
