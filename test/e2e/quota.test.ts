/**
 * Quotas, as a tenant meets them: its own RabbitMQ user (the README's permission recipe), two
 * agents, and starts on either host or through the queue. Its VMs, vCPUs and guest memory are
 * counted across the fleet, and a start past a limit gets `quota_exceeded` naming it, from the
 * client and from `kloud-tui start` (exit 1). The host's vCPU budget (`--cpu-overcommit`) too.
 * Real broker, real agents, real QEMU (paused guests).
 */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {availableParallelism} from 'node:os';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient, KloudRequestError} from '../../source/broker/client.js';
import type {StartBody, Vm} from '../../source/protocol/index.js';
import {AGENT_BIN, CLI_BIN, createCloud, createTenant, qemuPidsUnder, waitFor, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';

const TAG = randomBytes(2).toString('hex');
let cloud: Cloud;
let agents: AgentHandle[];
let alice: Tenant;
let bob: Tenant;
const clients: KloudClient[] = [];
const figures = {refused: 0, started: 0, hosts: 2};

beforeAll(async () => {
	cloud = await createCloud('quota');
	// The tenant names are random (kt-xxxxxx-alice): made first, the agents are then told their quotas.
	const names = {alice: `kt-${randomBytes(3).toString('hex')}-alice`};
	const quota = ['--quota', `${names.alice}=vms:3,cpus:4,memory:512`, '--quota-default', 'vms:1', '--memory', '128', '--cpu-overcommit', '2'];
	agents = await Promise.all([cloud.startAgent(`qa-${TAG}`, ['--start-paused', ...quota]), cloud.startAgent(`qb-${TAG}`, ['--start-paused', ...quota])]);
	[alice, bob] = await Promise.all([createTenant(cloud.namespace, 'alice', {name: names.alice}), createTenant(cloud.namespace, 'bob')]);
});

afterAll(async () => {
	await Promise.all(clients.map(async client => client.close()));
	await cloud?.cleanup();
	await Promise.all([alice?.remove(), bob?.remove()]);
	process.stdout.write(`quota figures: ${JSON.stringify(figures)}\n`);
});

async function clientOf(tenant: Tenant): Promise<KloudClient> {
	const name = `kloud-test-quota@${tenant.name}`;
	const client = await KloudClient.connect({url: tenant.url, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true});
	clients.push(client);
	return client;
}

async function refusal(client: KloudClient, body: StartBody): Promise<KloudRequestError> {
	const error = await client.start(body, {timeoutMs: 20_000}).then(
		(vm: Vm) => new Error(`started ${vm.id} on ${vm.host}: expected a refusal`),
		(error_: unknown) => error_,
	);
	expect(error).toBeInstanceOf(KloudRequestError);
	figures.refused++;
	return error as KloudRequestError;
}

async function cliStart(tenant: Tenant, args: readonly string[]): Promise<{code: number; stdout: string; stderr: string}> {
	return new Promise(resolve => {
		execFile(process.execPath, [CLI_BIN, 'start', '--image', 'blank', ...args, '--amqp', tenant.url, '--namespace', cloud.namespace], (error, stdout, stderr) => {
			resolve({code: error ? Number(error.code ?? 1) : 0, stdout, stderr});
		});
	});
}

describe('per-tenant quotas across the fleet', () => {
	it('counts VMs, vCPUs and memory on every host, and refuses the start past a limit naming it', async () => {
		const [a, b] = agents as [AgentHandle, AgentHandle];
		const client = await clientOf(alice);
		await waitFor(async () => (await client.list({timeoutMs: 2000})).replies.length === 2, 15_000, 'both agents answering');

		// 2 vCPUs on host a, 1 on host b: 3 of alice's 4.
		const first = await client.start({image: 'blank', host: a.hostId, cpus: 2}, {timeoutMs: 20_000});
		const second = await client.start({image: 'blank', host: b.hostId}, {timeoutMs: 20_000});
		figures.started += 2;
		expect([first.owner, second.owner]).toEqual([alice.name, alice.name]);

		// Host a alone holds 2 of her vCPUs: refusing 2 more takes host b's into account.
		const cpus = await refusal(client, {image: 'blank', host: a.hostId, cpus: 2});
		expect(cpus.code).toBe('quota_exceeded');
		expect(cpus.message).toContain(`quota_exceeded: tenant ${alice.name} may use at most 4 vCPUs (has 3, asked for 2 more)`);

		const memory = await refusal(client, {image: 'blank', host: b.hostId, memoryMb: 384});
		expect(memory.code).toBe('quota_exceeded');
		expect(memory.message).toContain(`tenant ${alice.name} may use at most 512 MB of guest memory (has 256, asked for 384 more)`);

		// Through the shared queue: a third VM fits (3 VMs, 4 vCPUs, 384 MB).
		const third = await client.start({image: 'blank'}, {timeoutMs: 20_000});
		figures.started++;

		// A fourth does not, whichever host takes it: from the CLI, exit 1 and the limit named.
		const cli = await cliStart(alice, ['--memory', '16']);
		expect(cli.code).toBe(1);
		expect(cli.stderr).toContain(`quota_exceeded: tenant ${alice.name} may run at most 3 VMs (has 3)`);
		figures.refused++;
		const direct = await refusal(client, {image: 'blank', host: third.host === a.hostId ? b.hostId : a.hostId, memoryMb: 16});
		expect(direct.message).toContain('may run at most 3 VMs (has 3)');

		// Nothing was made by the refused starts.
		const vms = (await client.list({timeoutMs: 3000})).replies.flatMap(snapshot => snapshot.vms);
		expect(vms.map(vm => vm.id).sort()).toEqual([first.id, second.id, third.id].sort());
		expect((await qemuPidsUnder(a.stateDir)).length + (await qemuPidsUnder(b.stateDir)).length).toBe(3);

		// A stopped VM keeps its disk, so it still counts as a VM: the next start is still refused.
		await client.stop(first.id, {kill: true, timeoutMs: 10_000});
		expect((await refusal(client, {image: 'blank', host: a.hostId, memoryMb: 16})).message).toContain('may run at most 3 VMs (has 3)');
		// A deleted VM frees its share: the next start fits again.
		await client.delete(first.id, {timeoutMs: 10_000});
		const again = await client.start({image: 'blank', host: a.hostId}, {timeoutMs: 20_000});
		figures.started++;
		for (const vm of [second, third, again]) {
			await client.delete(vm.id, {timeoutMs: 10_000});
		}
	});

	it('a tenant not named gets the default quota; one tenant at its limit does not hold back another', async () => {
		const [a, b] = agents as [AgentHandle, AgentHandle];
		const client = await clientOf(bob);
		const aliceClient = await clientOf(alice);
		const vm = await client.start({image: 'blank', host: b.hostId}, {timeoutMs: 20_000});
		figures.started++;
		const error = await refusal(client, {image: 'blank', host: a.hostId});
		expect(error.code).toBe('quota_exceeded');
		expect(error.message).toContain(`tenant ${bob.name} may run at most 1 VM (has 1)`);
		const cli = await cliStart(bob, []);
		expect([cli.code, cli.stderr]).toEqual([1, expect.stringContaining(`quota_exceeded: tenant ${bob.name} may run at most 1 VM (has 1)`)]);
		figures.refused++;

		const hers = await aliceClient.start({image: 'blank', host: b.hostId}, {timeoutMs: 20_000});
		figures.started++;
		await aliceClient.delete(hers.id, {timeoutMs: 10_000});
		await client.delete(vm.id, {timeoutMs: 10_000});
	});
});

describe("the host's vCPU budget", () => {
	it('refuses a VM with more vCPUs than --cpu-overcommit × cores allows', async () => {
		const [a] = agents as [AgentHandle];
		// Bob's default quota does not limit vCPUs: the host's budget is what refuses.
		const client = await clientOf(bob);
		const budget = Math.max(1, Math.floor(availableParallelism() * 2));
		const error = await refusal(client, {image: 'blank', host: a.hostId, cpus: budget + 1});
		expect(error.code).toBe('no_capacity');
		expect(error.message).toContain(`host ${a.hostId} hands out at most ${budget} vCPUs in all: a VM with ${budget + 1} never fits`);
	});
});

describe('quota flags', () => {
	it.each([
		[['--quota', 'alice'], 'invalid --quota "alice": expected TENANT=vms:N,cpus:N,memory:MB'],
		[['--quota', 'alice=disk:10'], 'invalid quota "disk:10": expected e.g. vms:4,cpus:8,memory:2048'],
		[['--quota', 'alice=vms:1', '--quota', 'alice=vms:2'], '--quota for tenant alice given twice'],
		[['--quota-default', 'vms:-1'], 'invalid quota "vms:-1"'],
		[['--cpu-overcommit', '0'], 'invalid --cpu-overcommit 0: must be a number ≥ 0.1'],
		[['--amqp-heartbeat', '0'], 'invalid --amqp-heartbeat 0: must be a number ≥ 1'],
	])('the agent refuses %j with exit 2 before it connects', async (args, message) => {
		const result = await new Promise<{code: number; stderr: string}>(resolve => {
			execFile(process.execPath, [AGENT_BIN, '--amqp', 'amqp://127.0.0.1:1', '--state-dir', `${cloud.dir}/never`, ...args], (error, _stdout, stderr) => {
				resolve({code: error ? Number(error.code ?? 1) : 0, stderr});
			});
		});
		expect(result.code).toBe(2);
		expect(result.stderr).toContain(message);
	});
});
