/**
 * Two attacks on a tenants-mode agent, done as an attacker would (issue 10, attacks 2 and 3):
 * - a forged heartbeat for a host `ghost` that announces a 2.5-day heartbeat period, published by a
 *   user who may publish events but is not an agent user (a tenant under the README's recipe may
 *   not publish events at all: tried too). Only agent users' events count: list rounds and starts
 *   never wait for ghost, and the drop is counted;
 * - 3,000 `vm.console` requests from one tenant for its own VM (whose console log holds 128 KiB)
 *   while another tenant starts and lists: the agent stays under its memory bound, keeps its broker
 *   connection, answers the other tenant, and answers every flooded request (`busy` past the
 *   flooder's share, nothing lost).
 */
import {execFile} from 'node:child_process';
import {randomBytes, randomUUID} from 'node:crypto';
import {appendFile, readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import amqp, {type ConsumeMessage} from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import type {Vm} from '../../source/protocol/index.js';
import {AGENT_BIN, createCloud, createTenant, waitFor, AMQP_URL, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';

const run = promisify(execFile);
const TAG = randomBytes(2).toString('hex');
/** The agent's resident memory must stay under this under the flood (README, "Bounded work"). */
const RSS_BOUND_MB = 200;
const FLOOD = 3000;

type BrokerUser = {readonly name: string; readonly url: string; remove(): Promise<void>};

/** A RabbitMQ user with the given vhost permissions (configure, write, read). */
async function createUser(label: string, permissions: readonly [string, string, string]): Promise<BrokerUser> {
	const name = `kt-${randomBytes(3).toString('hex')}-${label}`;
	const password = randomBytes(12).toString('hex');
	await run('rabbitmqctl', ['-q', 'add_user', name, password]);
	const remove = async () => {
		await run('rabbitmqctl', ['-q', 'delete_user', name]).catch(() => {});
	};

	try {
		await run('rabbitmqctl', ['-q', 'set_permissions', '-p', '/', name, ...permissions]);
	} catch (error) {
		await remove();
		throw error;
	}

	const url = new URL(AMQP_URL);
	url.username = name;
	url.password = password;
	return {name, url: url.toString(), remove};
}

let agentUser: BrokerUser;
let intruder: BrokerUser;
let cloud: Cloud;
let agent: AgentHandle;
let alice: Tenant;
let bob: Tenant;
const clients: KloudClient[] = [];

async function connect(tenant: {readonly name: string; readonly url: string}, options: {readonly watchEvents?: boolean} = {}): Promise<KloudClient> {
	const name = `kloud-test-evf@${tenant.name}-${TAG}`;
	const client = await KloudClient.connect({url: tenant.url, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true, agentUsers: [agentUser.name], ...options});
	clients.push(client);
	return client;
}

beforeAll(async () => {
	// The agents' own user, as the README's recipe makes it (full rights on the vhost).
	agentUser = await createUser('agent', ['.*', '.*', '.*']);
	cloud = await createCloud('evf', {amqpUrl: agentUser.url});
	const ns = cloud.namespace.replaceAll('.', '\\.');
	// rabbitmqctl is slow on a busy box (≈ 1-7 s a call): the users are made side by side.
	[intruder, alice, bob] = await Promise.all([
		// May publish events (and nothing else): an operator's tool, a misconfigured or stolen account.
		createUser('intruder', ['^$', `^${ns}\\.events$`, '^$']),
		createTenant(cloud.namespace, 'alice'),
		createTenant(cloud.namespace, 'bob'),
	]);
	agent = await cloud.startAgent(`evf-${TAG}`, ['--start-paused', '--tenants', '--max-vms', '8', '--memory', '32']);
}, 180_000);

afterAll(async () => {
	await Promise.all(clients.map(async client => client.close()));
	await cloud?.cleanup();
	await Promise.all([alice, bob, intruder, agentUser].map(async user => user?.remove()));
});

/** A valid heartbeat event for `ghost`, announcing a 2.5-day heartbeat period. */
function ghostHeartbeat(): Buffer {
	const body = {id: 'ghost', vmCount: 0, maxVms: 64, freeMemoryMb: 65_536, totalMemoryMb: 65_536, accel: 'kvm', images: ['blank'], heartbeatMs: 216_000_000, startedAt: Date.now(), underlay: '203.0.113.66', privateSlot: 7};
	return Buffer.from(JSON.stringify({v: 1, id: randomUUID(), from: 'ghost', ts: Date.now(), type: 'host.heartbeat', body}));
}

describe('authenticated events', () => {
	it('a forged heartbeat for a host "ghost" is dropped and counted: list rounds and starts do not wait for it', async () => {
		const watcher = await connect(alice, {watchEvents: true});
		const asAlice = await connect(alice);

		// A tenant under the README's recipe may not publish events at all (403).
		const tenant = await amqp.connect(alice.url);
		try {
			const channel = await tenant.createConfirmChannel();
			const refused = new Promise<Error>(resolve => channel.once('error', resolve));
			channel.publish(`${cloud.namespace}.events`, 'host.heartbeat.ghost', ghostHeartbeat(), {userId: alice.name});
			await channel.waitForConfirms().catch(() => {});
			expect((await refused).message).toMatch(/403 \(ACCESS-REFUSED\)/);
		} finally {
			await tenant.close().catch(() => {});
		}

		// A user who may publish events but is not an agent user: the broker takes its heartbeats,
		// one with its own (validated) userId, one with none.
		const seen: string[] = [];
		const spy = await amqp.connect(agentUser.url);
		const spyChannel = await spy.createChannel();
		const {queue} = await spyChannel.assertQueue('', {exclusive: true});
		await spyChannel.bindQueue(queue, `${cloud.namespace}.events`, 'host.heartbeat.*');
		await spyChannel.consume(queue, (message: ConsumeMessage | null) => message && seen.push(message.fields.routingKey), {noAck: true});
		const forger = await amqp.connect(intruder.url);
		try {
			const channel = await forger.createConfirmChannel();
			channel.publish(`${cloud.namespace}.events`, 'host.heartbeat.ghost', ghostHeartbeat(), {userId: intruder.name});
			channel.publish(`${cloud.namespace}.events`, 'host.heartbeat.ghost', ghostHeartbeat());
			await channel.waitForConfirms();
		} finally {
			await forger.close().catch(() => {});
		}

		// Both reached every event queue, and the agent's own heartbeat after them too: the agent
		// and the watcher have had their chance to take ghost in.
		await waitFor(() => seen.filter(key => key === 'host.heartbeat.ghost').length === 2, 5000, 'the forged heartbeats delivered');
		const ghostAt = seen.lastIndexOf('host.heartbeat.ghost');
		await waitFor(() => seen.slice(ghostAt).includes(`host.heartbeat.${agent.hostId}`), 5000, 'an agent heartbeat after them');
		await spy.close();

		// A list round (as a one-shot CLI does: from the agents' rosters) and one from the watcher's own roster.
		for (const client of [asAlice, watcher]) {
			const round = await client.list({timeoutMs: 8000});
			expect(round.missing).toEqual([]);
			expect(round.replies.map(snapshot => snapshot.host.id)).toEqual([agent.hostId]);
			expect(round.replies[0]!.roster).toEqual([agent.hostId]);
		}

		expect(watcher.roster.live(Date.now())).toEqual([agent.hostId]);
		expect(watcher.droppedEvents).toBe(2);

		// A start seen again (its token chosen by the caller) asks the fleet first: ghost is not waited for.
		const before = agent.logs().length;
		const vm = await asAlice.start({image: 'blank', clientToken: randomUUID()}, {timeoutMs: 20_000});
		expect(vm.owner).toBe(alice.name);
		expect(agent.logs().slice(before)).not.toMatch(/"missing":\[[^\]]*"ghost"/);
		await asAlice.stop(vm.id, {kill: true, timeoutMs: 5000});

		// The agent counted and logged the drop (rate-limited: one line here).
		expect(agent.logs()).toMatch(/"routingKey":"host\.heartbeat\.ghost".*"dropped events not published by an agent user"/);
		console.log(`forged heartbeats: 1 refused by the broker (tenant, 403), 2 delivered and dropped by the agent and the watcher (dropped count ${watcher.droppedEvents}); list rounds missing: none`);
	}, 60_000);

	it('an agent refuses a heartbeat over 60 s, an underlay outside its --underlay-cidr, and an AMQP heartbeat under 1 s', async () => {
		for (const [flags, message] of [
			[['--heartbeat', '61'], /invalid --heartbeat 61: at most 60 s/],
			[['--underlay', '192.0.2.1', '--underlay-cidr', '10.0.0.0/8'], /--underlay 192\.0\.2\.1 is not in --underlay-cidr 10\.0\.0\.0\/8/],
			[['--underlay-cidr', '10.0.0.1/8'], /invalid --underlay-cidr 10\.0\.0\.1\/8: it has host bits set/],
			[['--amqp-heartbeat', '0'], /invalid --amqp-heartbeat 0: must be a number ≥ 1/],
		] as const) {
			// Refused before it connects: exit 2 with one line.
			const refusal = await run(process.execPath, [AGENT_BIN, '--amqp', agentUser.url, '--host-id', `evf-bad-${TAG}`, '--state-dir', join(cloud.dir, 'bad'), ...flags]).then(
				() => undefined,
				(error: {code?: number; stderr?: string}) => error,
			);
			expect(refusal?.code).toBe(2);
			expect(refusal?.stderr).toMatch(message);
		}
	}, 60_000);
});

/** The agent's resident memory now and its peak (VmRSS, VmHWM) in MB. */
async function memoryMb(pid: number): Promise<{readonly rss: number; readonly peak: number}> {
	const status = await readFile(`/proc/${pid}/status`, 'utf8');
	const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
	return {rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024};
}

describe('bounded work', () => {
	it(`${FLOOD} console requests from one tenant: the agent stays under ${RSS_BOUND_MB} MB, keeps its connection, answers every one and serves another tenant`, async () => {
		const [asAlice, asBob] = await Promise.all([connect(alice), connect(bob)]);
		const vm = await asAlice.start({image: 'blank', host: agent.hostId}, {timeoutMs: 20_000});
		// A console log larger than the largest tail a request may ask for (128 KiB).
		await appendFile(join(agent.stateDir, vm.id, 'console.log'), `${'console line '.repeat(9)}\n`.repeat(1200));
		const tail = await asAlice.console(vm.id, {host: agent.hostId, bytes: 128 * 1024, timeoutMs: 5000});
		expect(tail.data.length).toBe(128 * 1024);

		const pid = agent.process.pid!;
		const before = await memoryMb(pid);
		const readyLogs = agent.logs().length;

		// The flood: alice's own connection, her own (validated) userId, her own VM, the largest tail.
		const answers = new Map<string, string>();
		const flooder = await amqp.connect(alice.url);
		let peakRss = before.rss;
		const sampler = setInterval(() => {
			void memoryMb(pid)
				.then(memory => {
					peakRss = Math.max(peakRss, memory.rss);
				})
				.catch(() => {});
		}, 50);
		try {
			const channel = await flooder.createConfirmChannel();
			await channel.consume(
				'amq.rabbitmq.reply-to',
				(message: ConsumeMessage | null) => {
					if (message) {
						const reply = JSON.parse(message.content.toString()) as {ok: boolean; code?: string};
						answers.set(String(message.properties.correlationId), reply.ok ? 'ok' : String(reply.code));
					}
				},
				{noAck: true},
			);
			for (let index = 0; index < FLOOD; index++) {
				const id = randomUUID();
				const request = {v: 1, id, from: 'flood', ts: Date.now(), type: 'vm.console', body: {vmId: vm.id, bytes: 128 * 1024}};
				channel.publish(`${cloud.namespace}.commands`, `host.${agent.hostId}`, Buffer.from(JSON.stringify(request)), {userId: alice.name, replyTo: 'amq.rabbitmq.reply-to', correlationId: id});
			}

			await channel.waitForConfirms();

			// Bob, meanwhile: a start on that host and a list round (upper bounds only).
			const started = await asBob.start({image: 'blank', host: agent.hostId}, {timeoutMs: 30_000}).catch((error: unknown) => error as Error);
			const round = await asBob.list({timeoutMs: 30_000});
			const bobAnsweredAfter = answers.size;

			// Every flooded request answered: its console tail, or `busy` past alice's share.
			const isAllAnswered = await waitFor(() => answers.size === FLOOD, 60_000, 'every answer').then(
				() => true,
				() => false,
			);
			const counts: Record<string, number> = {};
			for (const code of answers.values()) {
				counts[code] = (counts[code] ?? 0) + 1;
			}

			const after = await memoryMb(pid);
			peakRss = Math.max(peakRss, after.rss);
			const reconnects = agent.logs().slice(readyLogs).match(/"broker connection"/g)?.length ?? 0;
			console.log(
				`console flood: ${FLOOD} requests for 128 KiB each, ${answers.size} answered (${counts.ok ?? 0} ok, ${counts.busy ?? 0} busy); bob's start ${started instanceof Error ? `failed (${started.message})` : 'answered'} and list ${round.missing.length === 0 ? 'complete' : `missing ${round.missing.join(', ')}`} when ${bobAnsweredAfter} of the flood were answered; agent RSS ${before.rss.toFixed(0)} MB before, peak ${peakRss.toFixed(0)} MB sampled, VmHWM ${after.peak.toFixed(0)} MB; connection state changes ${reconnects}`,
			);
			expect(started).not.toBeInstanceOf(Error);
			expect((started as Vm).owner).toBe(bob.name);
			expect(round.missing).toEqual([]);
			expect(round.replies[0]!.vms.map(entry => entry.owner)).toEqual([bob.name]);
			expect(after.peak).toBeLessThan(RSS_BOUND_MB);
			// The same broker connection all along: no drop, no reconnect.
			expect(reconnects).toBe(0);
			expect(isAllAnswered).toBe(true);
			expect(counts.ok).toBeGreaterThan(0);
			expect(Object.keys(counts).filter(code => code !== 'ok' && code !== 'busy')).toEqual([]);
			await asBob.stop((started as Vm).id, {kill: true, timeoutMs: 5000});
			await asAlice.stop(vm.id, {kill: true, timeoutMs: 5000});
		} finally {
			clearInterval(sampler);
			await flooder.close().catch(() => {});
		}
	}, 240_000);
});
