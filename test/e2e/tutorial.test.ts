/**
 * `--tutorial-compat`: the tutorial's own control.py (Python, pika), run unchanged, starts, lists
 * and kills a VM through a kloud agent. It runs in a vhost of its own: its queue name is fixed.
 */
import {execFile} from 'node:child_process';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {createCloud, createVhost, pidByName, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';

const run = promisify(execFile);
const FIXTURES = fileURLToPath(new URL('../fixtures/tutorial/', import.meta.url));

let vhost: Awaited<ReturnType<typeof createVhost>>;
let cloud: Cloud;
let agent: AgentHandle;

async function control(...args: string[]): Promise<string> {
	const {stdout} = await run('/usr/bin/python3', [`${FIXTURES}run-in-vhost.py`, vhost.name, `${FIXTURES}control.py`, ...args], {timeout: 20_000});
	return stdout.trim();
}

beforeAll(async () => {
	vhost = await createVhost('tutorial');
	cloud = await createCloud('tut', {amqpUrl: vhost.url});
	agent = await cloud.startAgent('host-t', ['--tutorial-compat']);
});

afterAll(async () => {
	await cloud?.cleanup();
	await vhost?.remove();
});

describe("the tutorial's control.py against a kloud agent", () => {
	it('start-vm (no reply), list-vms, stop-vm with kill, and an error for an unknown VM', async () => {
		expect(await control('start-vm', '--image', 'blank')).toBe('[]');
		let ids: string[] = [];
		await waitFor(async () => {
			ids = (await cloud.cliJson<{vms: Array<{id: string; state: string}>}>(['list'])).vms.filter(vm => vm.state === 'running').map(vm => vm.id);
			return ids.length === 1;
		}, 15_000, 'the VM started by control.py');
		const [id] = ids;
		expect(await pidByName(id!)).toBeDefined();

		expect(await control('list-vms')).toBe(`[['${id}']]`);
		expect(await control('stop-vm', '--vm-id', id!)).toBe(`[{'status': 'killed', 'vm-id': '${id}'}]`);
		expect(await pidByName(id!)).toBeUndefined();
		expect(await control('list-vms')).toBe('[[]]');

		const unknown = await control('stop-vm', '--vm-id', 'vm-invalid');
		expect(unknown).toMatch(/^\[\{'status': 'error', 'reason': '.*vm-invalid.*'\}\]$/);
	});

	it('a start-vm for a path-like image starts nothing', async () => {
		expect(await control('start-vm', '--image', '../../etc/passwd')).toBe('[]');
		await waitFor(() => agent.logs().includes('refused a tutorial message'), 5000, 'the refusal in the agent log');
		expect(agent.logs()).toContain('not a path');
		// (The VM the test before stopped is kept, listed as stopped.)
		expect((await cloud.cliJson<{vms: Array<{state: string}>}>(['list'])).vms.filter(vm => vm.state !== 'stopped')).toEqual([]);
	});
});
