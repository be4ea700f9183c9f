/**
 * Delivery and faults for real: idempotent starts and stops, a start nobody has capacity for
 * answered at its TTL (dead-lettered), the memory budget, forced connection closes during a burst
 * of 50 starts, and agents SIGKILLed in the middle of a start. Real broker, real agents, real QEMU
 * (paused guests: these VMs need not boot).
 */
import {execFile, spawn} from 'node:child_process';
import {randomBytes, randomUUID} from 'node:crypto';
import {readdir, readFile} from 'node:fs/promises';
import {userInfo} from 'node:os';
import {join} from 'node:path';
import amqp from 'amqplib';
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient, KloudRequestError} from '../../source/broker/client.js';
import type {Vm} from '../../source/protocol/index.js';
import {CLI_BIN, closeConnections, createCloud, deleteNamespace, killVmProcesses, qemuPidsUnder, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';

const TAG = randomBytes(2).toString('hex');
let cloud: Cloud;
let client: KloudClient;
const clientName = `kloud-test-reliability@${TAG}`;
/** Faults this file injects, for the README's figures (printed at the end). */
const figures = {connectionsClosed: 0, agentsKilled: 0, starts: 0, vmsLost: 0};

beforeAll(async () => {
	cloud = await createCloud('rel');
	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: clientName, sender: clientName, reconnect: true});
});

/** Agents a test started: a failed test must not leave one taking the next test's starts. */
const agents: AgentHandle[] = [];

afterEach(async () => {
	for (const agent of agents.splice(0)) {
		await agent.stop('SIGKILL');
		await killVmProcesses(agent.stateDir);
	}
});

async function startAgent(hostId: string, extra: readonly string[]): Promise<AgentHandle> {
	const agent = await cloud.startAgent(hostId, extra);
	agents.push(agent);
	return agent;
}

afterAll(async () => {
	await client?.close();
	await cloud?.cleanup();
	process.stdout.write(`reliability figures: ${JSON.stringify(figures)}\n`);
});

const host = (name: string) => `${name}-${TAG}`;

async function listVms(): Promise<Vm[]> {
	const round = await client.list({timeoutMs: 3000});
	return round.replies.flatMap(snapshot => snapshot.vms);
}

async function expectError(promise: Promise<unknown>): Promise<KloudRequestError> {
	const error = await promise.then(
		() => undefined,
		(error_: unknown) => error_,
	);
	expect(error).toBeInstanceOf(KloudRequestError);
	return error as KloudRequestError;
}

/** The agent's pino lines with this message. */
function logLines(agent: AgentHandle, message: string): Array<Record<string, unknown>> {
	return agent
		.logs()
		.split('\n')
		.filter(line => line.includes(`"msg":"${message}"`))
		.map(line => JSON.parse(line) as Record<string, unknown>);
}

describe('idempotent start and stop', () => {
	it('a start sent again with its client token gets the same VM, also from a restarted agent; a repeated stop gets the stopped VM, also after a restart; a deleted one is remembered', async () => {
		let agent = await startAgent(host('idem'), ['--start-paused']);
		const clientToken = randomUUID();
		const first = await client.start({image: 'blank', host: agent.hostId, clientToken}, {timeoutMs: 20_000});
		const again = await client.start({image: 'blank', host: agent.hostId, clientToken}, {timeoutMs: 20_000});
		expect(again).toMatchObject({id: first.id, pid: first.pid, state: 'running'});
		// Through the shared work queue too.
		const queued = await client.start({image: 'blank', clientToken}, {timeoutMs: 20_000});
		expect(queued.id).toBe(first.id);

		await agent.stop('SIGTERM');
		agent = await startAgent(host('idem'), ['--start-paused']);
		const afterRestart = await client.start({image: 'blank', host: agent.hostId, clientToken}, {timeoutMs: 20_000});
		expect(afterRestart).toMatchObject({id: first.id, pid: first.pid});
		expect((await listVms()).filter(vm => vm.host === agent.hostId).map(vm => vm.id)).toEqual([first.id]);
		figures.starts += 4;

		const stopped = await client.stop(first.id, {host: agent.hostId, kill: true, timeoutMs: 10_000});
		expect(stopped).toMatchObject({id: first.id, state: 'stopped', exit: 'killed'});
		// Stopping what is already stopped is not an error: the same answer again.
		expect(await client.stop(first.id, {host: agent.hostId, kill: true, timeoutMs: 10_000})).toMatchObject({id: first.id, state: 'stopped'});
		expect(await client.stop(first.id, {host: agent.hostId, graceSeconds: 1, timeoutMs: 10_000})).toMatchObject({id: first.id, state: 'stopped'});
		// And its token still names that VM: a late retry of the start makes no new one.
		expect(await client.start({image: 'blank', host: agent.hostId, clientToken}, {timeoutMs: 20_000})).toMatchObject({id: first.id, state: 'stopped'});
		// A VM this agent never had is still unknown.
		const unknown = await expectError(client.stop('vm-neverwas', {host: agent.hostId, kill: true, timeoutMs: 10_000}));
		expect(unknown.code).toBe('unknown_vm');

		// The agent restarts after the VM is gone: its state dir still remembers the token and the stop.
		await agent.stop('SIGTERM');
		agent = await startAgent(host('idem'), ['--start-paused']);
		expect(await client.start({image: 'blank', host: agent.hostId, clientToken}, {timeoutMs: 20_000})).toMatchObject({id: first.id, state: 'stopped', exit: 'killed'});
		expect(await client.stop(first.id, {host: agent.hostId, kill: true, timeoutMs: 10_000})).toMatchObject({id: first.id, state: 'stopped'});
		expect(await qemuPidsUnder(agent.stateDir)).toEqual([]);
		// A stopped VM is kept (its disk too) until deleted; a deleted one is remembered, also across a restart.
		expect((await listVms()).filter(vm => vm.host === agent.hostId).map(vm => [vm.id, vm.state])).toEqual([[first.id, 'stopped']]);
		expect(await client.delete(first.id, {host: agent.hostId, timeoutMs: 10_000})).toMatchObject({id: first.id, state: 'deleted'});
		await agent.stop('SIGTERM');
		agent = await startAgent(host('idem'), ['--start-paused']);
		expect(await client.start({image: 'blank', host: agent.hostId, clientToken}, {timeoutMs: 20_000})).toMatchObject({id: first.id, state: 'deleted'});
		expect(await client.delete(first.id, {host: agent.hostId, timeoutMs: 10_000})).toMatchObject({id: first.id, state: 'deleted'});
		expect((await listVms()).filter(vm => vm.host === agent.hostId)).toEqual([]);
		figures.starts += 1;
		await agent.stop('SIGTERM');
	});
});

describe('idempotent start across hosts', () => {
	it('a start seen again on another host gets the VM the first host made, not a second one', async () => {
		const first = await startAgent(host('tok-x'), ['--start-paused', '--max-vms', '1']);
		const other = await startAgent(host('tok-y'), ['--start-paused']);
		await waitFor(async () => (await client.list({timeoutMs: 2000})).replies.length === 2, 10_000, 'both agents in the roster');
		const clientToken = randomUUID();
		const made = await client.start({image: 'blank', host: first.hostId, clientToken}, {timeoutMs: 20_000});
		// The first host is full now and takes nothing from the queue: the other host gets the resend,
		// does not know the token, asks the fleet, and answers with the first host's VM.
		const again = await client.start({image: 'blank', clientToken}, {timeoutMs: 20_000});
		expect(again).toMatchObject({id: made.id, host: first.hostId, pid: made.pid});
		// The reply can overtake the agent's log line on its stdout pipe.
		await waitFor(async () => other.logs().includes('a start seen again: found the VM its token made'), 5000, 'the other host\'s log line');
		expect(await qemuPidsUnder(other.stateDir)).toEqual([]);
		figures.starts += 2;
		await client.delete(made.id, {host: first.hostId, timeoutMs: 10_000});
	});
});

describe('nobody home', () => {
	it('a start no host has capacity for is answered "no host had capacity" when its TTL runs out, not left to hang', async () => {
		const agent = await startAgent(host('full'), ['--start-paused', '--max-vms', '1']);
		const running = await client.start({image: 'blank'}, {timeoutMs: 20_000});
		expect(running.host).toBe(agent.hostId);

		const started = performance.now();
		const error = await expectError(client.start({image: 'blank'}, {timeoutMs: 4000}));
		const elapsed = performance.now() - started;
		expect(error.code).toBe('no_capacity');
		expect(error.message).toMatch(/no host had capacity to take the start of a VM from image "blank" within 2\.0 s/);
		// The queue TTL is the timeout less a margin (here 2 s): answered then, well before the 4 s timeout.
		expect(elapsed).toBeGreaterThan(1900);
		expect(elapsed).toBeLessThan(3500);

		// Sent to the full host itself: refused at once.
		const direct = await expectError(client.start({image: 'blank', host: agent.hostId}, {timeoutMs: 4000}));
		expect(direct.code).toBe('no_capacity');
		expect(direct.message).toMatch(/is full \(1 of 1 VMs\)/);
		await client.delete(running.id, {host: agent.hostId, timeoutMs: 10_000});
		await agent.stop('SIGTERM');
	});

	it('keeps within the memory budget: a start too big for every host is dead-lettered after the delivery limit and answered at once', async () => {
		const agent = await startAgent(host('mem'), ['--start-paused', '--memory-budget', '300', '--memory', '128']);
		const first = await client.start({image: 'blank'}, {timeoutMs: 20_000});
		const second = await client.start({image: 'blank', memoryMb: 128}, {timeoutMs: 20_000});
		expect([first.memoryMb, second.memoryMb]).toEqual([128, 128]);

		const direct = await expectError(client.start({image: 'blank', host: agent.hostId, memoryMb: 64}, {timeoutMs: 5000}));
		expect(direct.code).toBe('no_capacity');
		expect(direct.message).toMatch(/has 44 of its 300 MB memory budget free, not the 64 MB asked for/);

		// The agent still takes queued starts of the default size? No: 128 MB do not fit either, so it
		// stopped consuming and the start expires. A small one sent to the host fits.
		const small = await client.start({image: 'blank', host: agent.hostId, memoryMb: 32}, {timeoutMs: 20_000});
		expect(small.memoryMb).toBe(32);

		await client.delete(small.id, {host: agent.hostId, timeoutMs: 10_000});
		await client.delete(second.id, {host: agent.hostId, timeoutMs: 10_000});
		// 172 MB free now: the agent takes queued starts of 128 MB again, but one of 1 GiB fits no
		// host. Each refusal puts it back; after the delivery limit it is dead-lettered and answered.
		const started = performance.now();
		const tooBig = await expectError(client.start({image: 'blank', memoryMb: 1024}, {timeoutMs: 20_000}));
		expect(tooBig.code).toBe('no_capacity');
		expect(tooBig.message).toMatch(/no host had capacity for a VM from image "blank" with 1024 MB: it was offered 11 times and refused/);
		expect(performance.now() - started).toBeLessThan(5000);
		expect((await listVms()).filter(vm => vm.host === agent.hostId).map(vm => vm.id)).toEqual([first.id]);
		await client.delete(first.id, {host: agent.hostId, timeoutMs: 10_000});
		await agent.stop('SIGTERM');
	});
});

describe('upgrading', () => {
	it('says what to do about a start queue declared by a kloud from before dead-lettering', async () => {
		const namespace = `${cloud.namespace}-old`;
		const connection = await amqp.connect(cloud.amqpUrl);
		try {
			const channel = await connection.createChannel();
			await channel.assertQueue(`${namespace}.start`, {durable: true, arguments: {'x-queue-type': 'quorum'}});
			const result = await new Promise<{code: number; stderr: string}>(resolve => {
				execFile(process.execPath, [CLI_BIN, 'list', '--amqp', cloud.amqpUrl, '--namespace', namespace], (error, _stdout, stderr) => resolve({code: error ? Number(error.code ?? 1) : 0, stderr}));
			});
			expect(result.code).toBe(1);
			expect(result.stderr).toContain(`queue ${namespace}.start was declared by an older kloud with other arguments: delete it once (rabbitmqctl delete_queue ${namespace}.start) and start again`);
		} finally {
			await connection.close();
			await deleteNamespace(namespace, cloud.amqpUrl);
		}
	});
});

describe('connection loss', () => {
	it('50 starts while the broker drops the agent\'s and then the client\'s connection: each answered once, no doubles, no orphans', async () => {
		// 50 one-vCPU VMs: more than the default vCPU budget of a 2-core host (16 × 2).
		const agent = await startAgent(host('burst'), ['--start-paused', '--max-vms', '60', '--memory', '32', '--cpu-overcommit', '64']);
		const started = () => logLines(agent, 'VM started').length;
		const burst = Array.from({length: 50}, async () => client.start({image: 'blank'}, {timeoutMs: 90_000}));
		const settled = Promise.allSettled(burst);

		await waitFor(() => started() >= 10, 60_000, '10 VMs started');
		expect(await closeConnections(`kloud-agent@${agent.hostId}`)).toBe(1);
		await waitFor(() => started() >= 25, 60_000, '25 VMs started');
		expect(await closeConnections(clientName)).toBe(1);
		figures.connectionsClosed += 2;

		const results = await settled;
		const failures = results.flatMap(result => (result.status === 'rejected' ? [String(result.reason)] : []));
		expect(failures).toEqual([]);
		const vms = results.map(result => (result as PromiseFulfilledResult<Vm>).value);
		figures.starts += 50;
		expect(new Set(vms.map(vm => vm.id)).size).toBe(50);
		expect(new Set(vms.map(vm => vm.pid)).size).toBe(50);

		const listed = (await listVms()).filter(vm => vm.host === agent.hostId);
		expect(listed).toHaveLength(50);
		expect(new Set(listed.map(vm => vm.pid)).size).toBe(50);
		expect(listed.map(vm => vm.id).sort()).toEqual(vms.map(vm => vm.id).sort());
		// No orphans: exactly these 50 QEMUs run from this agent's state dir, and 50 VM dirs exist.
		expect(await qemuPidsUnder(agent.stateDir)).toEqual(listed.map(vm => vm.pid!).sort((a, b) => a - b));
		expect((await readdir(agent.stateDir)).filter(name => name.startsWith('vm-'))).toHaveLength(50);
		expect(started()).toBe(50);
		// The close did interrupt work: some starts were seen again (redelivered or retried).
		expect(agent.logs()).toContain('"isRepeat":true');
		expect(agent.logs()).not.toContain('request handling failed');
		figures.vmsLost += 50 - listed.length;

		for (const vm of listed) {
			await client.delete(vm.id, {host: agent.hostId, timeoutMs: 10_000});
		}

		expect(await qemuPidsUnder(agent.stateDir)).toEqual([]);
		await agent.stop('SIGTERM');
	});

	it('the CLI survives a forced close in the middle of a start and retries it with the same token', async () => {
		const agent = await startAgent(host('cli'), ['--start-paused', '--max-vms', '1']);
		const blocker = await client.start({image: 'blank'}, {timeoutMs: 20_000});
		// The start waits in the queue (the host is full) while the CLI's connection is closed.
		const child = spawn(process.execPath, [CLI_BIN, 'start', '--image', 'blank', '--json', '--timeout', '8', '--amqp', cloud.amqpUrl, '--namespace', cloud.namespace]);
		let stdout = '';
		let stderr = '';
		child.stdout.on('data', (chunk: Buffer) => {
			stdout += chunk.toString();
		});
		child.stderr.on('data', (chunk: Buffer) => {
			stderr += chunk.toString();
		});
		const exited = new Promise<number>(resolve => child.once('exit', code => resolve(code ?? -1)));
		const cliName = `kloud-tui@${userInfo().username}:${child.pid}`;
		await waitFor(async () => (await closeConnections(cliName)) > 0, 10_000, 'the CLI connection to close');
		figures.connectionsClosed++;
		await new Promise(resolve => setTimeout(resolve, 500));
		await client.delete(blocker.id, {host: agent.hostId, timeoutMs: 10_000});
		const result = {code: await exited, stdout, stderr};
		expect(result.stderr).toBe('');
		expect(result.code).toBe(0);
		const vm = JSON.parse(result.stdout) as Vm;
		// Both copies of the start reached the agent: the one from before the close made the VM (its
		// answer went to a dead address), the resent one waited behind it (the host was full again)
		// until it expired, and was answered from the dead-letter queue with that VM. One VM.
		const vms = (await listVms()).filter(entry => entry.host === agent.hostId);
		expect(vms.map(entry => entry.id)).toEqual([vm.id]);
		expect(await qemuPidsUnder(agent.stateDir)).toEqual([vm.pid]);
		figures.starts += 2;
		await client.delete(vm.id, {host: agent.hostId, timeoutMs: 10_000});
		await agent.stop('SIGTERM');
	});
});

describe('crashes', () => {
	/** Waits (polling fast) until `ready` holds, then SIGKILLs the agent: a crash at that point of a start. */
	async function killWhen(agent: AgentHandle, ready: () => Promise<boolean>): Promise<void> {
		const deadline = Date.now() + 20_000;
		while (!(await ready())) {
			if (Date.now() > deadline) {
				throw new Error('the start never reached the point to crash at');
			}

			await new Promise(resolve => setTimeout(resolve, 2));
		}

		agent.process.kill('SIGKILL');
		await agent.stop('SIGKILL');
		figures.agentsKilled++;
	}

	async function vmDirs(stateDir: string): Promise<string[]> {
		return (await readdir(stateDir).catch(() => [])).filter(name => /^vm-[a-z]{8}$/.test(name)).sort();
	}

	it.each([
		['its VM directory appears (before QEMU runs)', async (stateDir: string) => (await vmDirs(stateDir)).length > 0],
		['its QEMU process appears', async (stateDir: string) => (await qemuPidsUnder(stateDir)).length > 0],
	])('an agent SIGKILLed as %s: on restart, the start goes through once and nothing half-made is left', async (_point, ready) => {
		const hostId = host(`crash${randomBytes(1).toString('hex')}`);
		let agent = await startAgent(hostId, ['--start-paused']);
		const start = client.start({image: 'blank'}, {timeoutMs: 60_000});
		await killWhen(agent, async () => ready(agent.stateDir));
		const before = await vmDirs(agent.stateDir);
		const phases = await Promise.all(
			before.map(async id => (JSON.parse(await readFile(join(agent.stateDir, id, 'vm.json'), 'utf8').catch(() => '{"phase":"no record"}')) as {phase: string}).phase),
		);

		agent = await startAgent(hostId, ['--start-paused']);
		// The start was never acked: the broker hands it to the restarted agent, which answers it.
		const vm = await Promise.race([start, new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`no answer; agent log:\n${agent.logs()}`)), 20_000))]);
		figures.starts++;
		expect(vm.host).toBe(hostId);
		const listed = (await listVms()).filter(entry => entry.host === hostId);
		expect(listed.map(entry => entry.id)).toEqual([vm.id]);
		expect(await qemuPidsUnder(agent.stateDir)).toEqual([vm.pid]);
		expect(await vmDirs(agent.stateDir)).toEqual([vm.id]);
		for (const [index, id] of before.entries()) {
			if (id !== vm.id) {
				// Cut short before it was confirmed: removed (process, overlay, directory), never adopted.
				expect(phases[index]).not.toBe('running');
				expect(agent.logs()).toMatch(new RegExp(`"vm":"${id}".*"(killed an unmanaged VM process|removed leftovers)"`));
			}
		}

		figures.vmsLost += listed.length === 1 ? 0 : 1;
		await client.delete(vm.id, {host: hostId, timeoutMs: 10_000});
		await agent.stop('SIGTERM');
	});
});
