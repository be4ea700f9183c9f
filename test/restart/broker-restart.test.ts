/**
 * A broker restart (`rabbitmqctl stop_app` / `start_app`): the agent reconnects, re-declares its
 * topology and keeps its VM; a long-lived client (the TUI's kind) reconnects and carries on; the
 * CLI works again. Run in its own vitest pass after the main suite (`npm test`), because every other
 * test talking to the broker would see it go away.
 */
import {execFile} from 'node:child_process';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import {AMQP_URL, createCloud, pidByName, waitFor, type Cloud} from '../helpers/cloud.js';

const run = promisify(execFile);
let cloud: Cloud;
let client: KloudClient;

beforeAll(async () => {
	cloud = await createCloud('restart');
	await cloud.startAgent('host-r', ['--start-paused']);
	client = await KloudClient.connect({url: AMQP_URL, namespace: cloud.namespace, connectionName: 'kloud-test@restart', sender: 'kloud-test', reconnect: true, watchEvents: true});
});

afterAll(async () => {
	// Whatever happened, leave the broker running for whoever comes next.
	await run('rabbitmqctl', ['-q', 'start_app']).catch(() => {});
	await run('rabbitmqctl', ['-q', 'await_startup']).catch(() => {});
	await client?.close();
	await cloud?.cleanup();
});

describe('a broker restart', () => {
	it('is survived by the agent, a long-lived client and the CLI, and no VM is lost', async () => {
		const vm = await cloud.cliJson<{id: string; pid: number}>(['start', '--image', 'blank']);
		const states: string[] = [];
		client.onConnectionState(state => states.push(state.status));

		const stoppedAt = performance.now();
		await run('rabbitmqctl', ['-q', 'stop_app']);
		await waitFor(() => states.includes('disconnected'), 10_000, 'the client to notice the broker is gone');
		await run('rabbitmqctl', ['-q', 'start_app']);
		await run('rabbitmqctl', ['-q', 'await_startup']);

		await waitFor(() => client.connection.isConnected, 30_000, 'the long-lived client to reconnect');
		// The agent is back when a list round (over the long-lived client) hears it again.
		let vms: string[] = [];
		await waitFor(async () => {
			const round = await client.list({timeoutMs: 2000}).catch(() => undefined);
			vms = round?.replies.flatMap(reply => reply.vms.map(entry => entry.id)) ?? [];
			return round?.replies.length === 1;
		}, 30_000, 'the agent to answer again');
		const recoveredMs = performance.now() - stoppedAt;
		expect(vms).toEqual([vm.id]);
		expect(await pidByName(vm.id)).toBe(vm.pid);

		// Work goes on: a start through the (quorum) work queue, a stop routed to the owner, the CLI.
		const second = await client.start({image: 'blank'}, {timeoutMs: 30_000});
		expect(second.host).toBe('host-r');
		await client.stop(second.id, {kill: true, host: second.host, timeoutMs: 10_000});
		// A killed VM is kept, stopped, until deleted (the VM lifecycle).
		const listed = await cloud.cliJson<{vms: Array<{id: string; state: string}>}>(['list']);
		expect(listed.vms.map(entry => [entry.id, entry.state]).sort()).toEqual([[vm.id, 'running'], [second.id, 'stopped']].sort());
		expect(recoveredMs).toBeLessThan(60_000);
		console.log(`broker restart: agent and client back ${(recoveredMs / 1000).toFixed(1)} s after stop_app`);
	});
});
