/**
 * Fuzz: 1,200 generated malformed messages, raw amqplib, at two agents' host queues, at every
 * agent at once, and into the shared start queue, while VMs are started, listed and stopped through
 * the client. Every good request must succeed, every malformed one with a reply address must get
 * exactly one error reply per host it reached, no VM may be lost, and the agents keep serving.
 */
import {randomBytes, randomUUID} from 'node:crypto';
import amqp, {type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options} from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import {ERROR_CODES, MAX_MESSAGE_BYTES, type Vm} from '../../source/protocol/index.js';
import {createCloud, qemuPidsUnder, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';

const TAG = randomBytes(2).toString('hex');
const FUZZ_COUNT = 1200;
let cloud: Cloud;
let agents: AgentHandle[];
let client: KloudClient;
let connection: ChannelModel;
let channel: ConfirmChannel;
const replies = new Map<string, Array<Record<string, unknown>>>();

beforeAll(async () => {
	cloud = await createCloud('fuzz');
	agents = await Promise.all([cloud.startAgent(`fz-a-${TAG}`, ['--start-paused', '--max-vms', '40', '--memory', '32']), cloud.startAgent(`fz-b-${TAG}`, ['--start-paused', '--max-vms', '40', '--memory', '32'])]);
	const name = `kloud-test-fuzz@${TAG}`;
	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true});
	connection = await amqp.connect(cloud.amqpUrl);
	channel = await connection.createConfirmChannel();
	await channel.consume(
		'amq.rabbitmq.reply-to',
		(message: ConsumeMessage | null) => {
			if (message) {
				const id = String(message.properties.correlationId ?? '');
				replies.set(id, [...(replies.get(id) ?? []), JSON.parse(message.content.toString()) as Record<string, unknown>]);
			}
		},
		{noAck: true},
	);
});

afterAll(async () => {
	await connection?.close().catch(() => {});
	await client?.close();
	await cloud?.cleanup();
});

/** A small seeded PRNG (mulberry32): the same messages every run, so a failure can be replayed. */
function prng(seed: number): () => number {
	let state = seed;
	return () => {
		state = (state + 0x6d_2b_79_f5) | 0;
		let t = Math.imul(state ^ (state >>> 15), 1 | state);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
	};
}

type Target = 'host' | 'all' | 'queue';
type Fuzzed = {
	readonly kind: string;
	readonly content: Buffer;
	readonly target: Target;
	/** A Direct Reply-To address (ours) or none or someone else's queue. */
	readonly replyTo: 'ours' | 'none' | 'not-a-reply-address';
	readonly correlationId: string;
	/** The error code every reply must carry, when the kind decides it. */
	readonly code?: string;
};

const SHELL = ['$(reboot)', '`id`', '; rm -rf /', '| nc evil 1', '&& halt', '\n/bin/sh', "'; DROP TABLE vms; --", '${IFS}cat${IFS}/etc/shadow', '> /dev/sda'];
const PATHS = ['../../etc/passwd', '/etc/shadow', 'images/../../root', '..', '.', 'a/b', 'C:\\Windows\\system32', '%2e%2e%2f', 'blank/../../x', '~root'];

function generate(count: number, random: () => number): Fuzzed[] {
	const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
	const envelope = () => ({v: 1, id: randomUUID(), from: 'fuzz', ts: Date.now()});
	const json = (value: unknown) => Buffer.from(JSON.stringify(value));
	const makers: Array<() => {kind: string; content: Buffer; code?: string; queueOk?: boolean}> = [
		() => ({kind: 'truncated JSON', content: json({...envelope(), type: 'vm.list', body: {}}).subarray(0, 1 + Math.floor(random() * 40)), code: 'bad_request'}),
		() => ({kind: 'random bytes', content: randomBytes(1 + Math.floor(random() * 300)), code: 'bad_request'}),
		() => ({kind: 'empty', content: Buffer.alloc(0), code: 'bad_request'}),
		() => ({kind: 'not an object', content: json(pick([42, 'vm.start', null, true, [1, 2], []])), code: 'bad_request'}),
		() => ({kind: 'wrong version', content: json({...envelope(), v: pick([0, 2, 99, '1', null, 1.5, -1]), type: 'vm.list', body: {}}), code: 'unsupported_version'}),
		() => ({kind: 'no version', content: json({id: randomUUID(), from: 'fuzz', ts: 1, type: 'vm.list', body: {}}), code: 'unsupported_version'}),
		() => ({kind: 'unknown type', content: json({...envelope(), type: pick(['vm.reboot', 'vm.exec', 'reply', 'host.heartbeat', '', 'VM.START', 'vm.start ', '__proto__']), body: {}}), code: 'bad_request'}),
		() => ({kind: 'path as image', content: json({...envelope(), type: 'vm.start', body: {image: pick(PATHS)}}), code: 'bad_request'}),
		() => ({kind: 'overlong image', content: json({...envelope(), type: 'vm.start', body: {image: 'a'.repeat(65 + Math.floor(random() * 5000))}}), code: 'bad_request'}),
		() => ({kind: 'shell in image', content: json({...envelope(), type: 'vm.start', body: {image: `blank${pick(SHELL)}`}}), code: 'bad_request'}),
		() => ({kind: 'bad VM id', content: json({...envelope(), type: pick(['vm.stop', 'vm.kill', 'vm.console']), body: {vmId: pick(['vm-ABCDEFGH', 'vm-abc', '', 'vm-abcdefghi', '../vm-abcdefgh', 'vm-abcdefg1', 42, null])}}), code: 'bad_request'}),
		() => ({kind: 'shell in VM id', content: json({...envelope(), type: pick(['vm.stop', 'vm.kill']), body: {vmId: `vm-${pick(SHELL)}`}}), code: 'bad_request'}),
		() => ({kind: 'absurd memory', content: json({...envelope(), type: 'vm.start', body: {image: 'blank', memoryMb: pick([-1, 0, 15, 1e12, 2 ** 53, 1.5, '256', null, Number.MAX_VALUE])}}), code: 'bad_request'}),
		() => ({kind: 'absurd cpus', content: json({...envelope(), type: 'vm.start', body: {image: 'blank', cpus: pick([0, -4, 257, 1e9, 0.5, '2', true])}}), code: 'bad_request'}),
		() => ({kind: 'absurd grace', content: json({...envelope(), type: 'vm.stop', body: {vmId: 'vm-abcdefgh', graceSeconds: pick([-1, 3601, 1e300, '10'])}}), code: 'bad_request'}),
		() => ({kind: 'unknown field', content: json({...envelope(), type: 'vm.start', body: {image: 'blank', command: pick(SHELL)}}), code: 'bad_request'}),
		() => ({kind: 'bad envelope', content: json({v: 1, id: pick(['', 'x'.repeat(65), 7]), from: pick(['', 'x'.repeat(129), null]), ts: pick([-1, 'now', 1.5]), type: 'vm.list', body: {}}), code: 'bad_request'}),
		() => ({kind: 'body not an object', content: json({...envelope(), type: 'vm.list', body: pick([null, [], 'x', 1])}), code: 'bad_request'}),
		() => ({kind: 'bad token', content: json({...envelope(), type: 'vm.start', body: {image: 'blank', clientToken: pick(['', 'x'.repeat(65), 5])}}), code: 'bad_request'}),
		// Well-formed, but for an image no host has: refused by the agent, not the parser.
		() => ({kind: 'unknown image', content: json({...envelope(), type: 'vm.start', body: {image: `nosuch-${Math.floor(random() * 1e6)}`}}), code: 'unknown_image'}),
		// Well-formed, but more memory than any host's budget: through the queue it is refused by
		// every host until the delivery limit, then answered from the dead-letter queue.
		() => ({kind: 'more memory than any host has', content: json({...envelope(), type: 'vm.start', body: {image: 'blank', memoryMb: 1_048_576}}), code: 'no_capacity'}),
		() => ({kind: 'unknown VM', content: json({...envelope(), type: pick(['vm.stop', 'vm.kill', 'vm.console']), body: {vmId: 'vm-zzzzzzzz'}}), code: 'unknown_vm'}),
	];
	const messages: Fuzzed[] = [];
	for (let index = 0; index < count; index++) {
		// A few huge ones: refused unread.
		const made = index % 240 === 7 ? {kind: 'huge', content: Buffer.alloc(MAX_MESSAGE_BYTES + 1 + Math.floor(random() * 100_000), 0x7b), code: 'bad_request'} : pick(makers)();
		const roll = random();
		const target: Target = roll < 0.45 ? 'host' : roll < 0.6 ? 'all' : 'queue';
		const replyRoll = random();
		messages.push({
			...made,
			target,
			replyTo: replyRoll < 0.85 ? 'ours' : replyRoll < 0.95 ? 'none' : 'not-a-reply-address',
			correlationId: randomUUID(),
		});
	}

	return messages;
}

describe('fuzz', () => {
	it(`${FUZZ_COUNT} malformed messages while VMs are started, listed and stopped: every good request succeeds, every bad one gets one error reply per host, no VM is lost`, async () => {
		const [hostA, hostB] = agents as [AgentHandle, AgentHandle];
		// Both agents know each other (each reply's roster names both), so every round waits for both.
		await waitFor(async () => {
			const round = await client.list({timeoutMs: 2000});
			return round.replies.length === 2 && round.replies.every(reply => reply.roster.length === 2);
		}, 10_000, 'both agents in each other\'s roster');
		// VMs that run before the storm and must come through it untouched.
		const before = await Promise.all(Array.from({length: 4}, async () => client.start({image: 'blank'}, {timeoutMs: 30_000})));

		const messages = generate(FUZZ_COUNT, prng(0x6b_6c_6f_75));
		const send = async () => {
			for (const [index, message] of messages.entries()) {
				const properties: Options.Publish = {
					correlationId: message.correlationId,
					...(message.replyTo === 'ours' ? {replyTo: 'amq.rabbitmq.reply-to'} : {}),
					// An agent must never publish into a queue a request names, e.g. the start queue.
					...(message.replyTo === 'not-a-reply-address' ? {replyTo: `${cloud.namespace}.start`} : {}),
					...(index % 7 === 0 ? {headers: {'x-kloud-repeat': 'NaN', 'x-death': 'forged'}} : {}),
					...(index % 11 === 0 ? {contentType: 'text/x-shellscript'} : {}),
				};
				const [exchange, key] =
					message.target === 'host'
						? [`${cloud.namespace}.commands`, `host.${index % 2 === 0 ? hostA.hostId : hostB.hostId}`]
						: message.target === 'all'
							? [`${cloud.namespace}.commands`, 'all']
							: ['', `${cloud.namespace}.start`];
				channel.publish(exchange, key, message.content, properties);
				if (index % 100 === 99) {
					await channel.waitForConfirms();
				}
			}

			await channel.waitForConfirms();
		};

		// Good traffic at the same time: starts through the queue and on a named host, list rounds, stops.
		const good = async () => {
			const started: Vm[] = [];
			const lists: number[] = [];
			for (let round = 0; round < 10; round++) {
				const [vm, named, list] = await Promise.all([
					client.start({image: 'blank'}, {timeoutMs: 60_000}),
					client.start({image: 'blank', host: round % 2 === 0 ? hostA.hostId : hostB.hostId}, {timeoutMs: 60_000}),
					client.list({timeoutMs: 5000}),
				]);
				started.push(vm, named);
				lists.push(list.replies.length);
				if (round % 3 === 2) {
					// Stop one of those just started, gracefully or not.
					const victim = started.shift()!;
					expect(await client.stop(victim.id, {host: victim.host, kill: round % 2 === 0, graceSeconds: 0, timeoutMs: 10_000})).toMatchObject({id: victim.id, state: 'stopped'});
				}
			}

			return {started, lists};
		};

		const sendStarted = performance.now();
		const [, traffic] = await Promise.all([send(), good()]);
		const sendMs = performance.now() - sendStarted;

		// Every malformed message with our reply address: exactly one reply per host it reached.
		const expected = (message: Fuzzed) => (message.replyTo === 'ours' ? (message.target === 'all' ? 2 : 1) : 0);
		const withReply = messages.filter(message => expected(message) > 0);
		await waitFor(() => withReply.every(message => (replies.get(message.correlationId)?.length ?? 0) >= expected(message)), 60_000, 'a reply to every malformed message');
		// Late duplicates would show up now.
		await new Promise(resolve => setTimeout(resolve, 1500));
		const wrongCounts = messages
			.filter(message => (replies.get(message.correlationId)?.length ?? 0) !== expected(message))
			.map(message => `${message.kind} → ${message.target}, reply ${message.replyTo}: ${replies.get(message.correlationId)?.length ?? 0} replies, expected ${expected(message)}`);
		expect(wrongCounts).toEqual([]);
		const wrongAnswers = withReply.flatMap(message =>
			(replies.get(message.correlationId) ?? [])
				// `busy`: the flood filled the share of senders without a user id at that host; still one clear answer.
				.filter(reply => reply.ok !== false || !ERROR_CODES.includes(reply.code as never) || (message.code !== undefined && reply.code !== message.code && reply.code !== 'busy') || typeof reply.reason !== 'string')
				.map(reply => `${message.kind} → ${message.target}: ${JSON.stringify(reply).slice(0, 300)}`),
		);
		expect(wrongAnswers).toEqual([]);

		// The good traffic all succeeded, and every list round heard both hosts.
		expect(traffic.lists.every(count => count === 2)).toBe(true);
		expect(traffic.started).toHaveLength(20 - 3);

		// No VM lost or doubled: exactly the survivors run, with the same pids, and nothing else.
		const survivors = [...before, ...traffic.started];
		// (A stopped VM is kept, listed as stopped: the victims are those.)
		const all = (await client.list({timeoutMs: 5000})).replies.flatMap(snapshot => snapshot.vms);
		const listed = all.filter(vm => vm.state !== 'stopped');
		expect(all.filter(vm => vm.state === 'stopped')).toHaveLength(3);
		expect(listed.map(vm => vm.id).sort()).toEqual(survivors.map(vm => vm.id).sort());
		for (const vm of before) {
			expect(listed.find(entry => entry.id === vm.id)).toMatchObject({state: 'running', pid: vm.pid});
		}

		expect(await qemuPidsUnder(cloud.dir)).toEqual(listed.map(vm => vm.pid!).sort((a, b) => a - b));
		// Nothing was injected into the start queue, and nothing is left in it or in the dead letters.
		await waitFor(async () => (await channel.checkQueue(`${cloud.namespace}.start`)).messageCount === 0, 10_000, 'an empty start queue');
		await waitFor(async () => (await channel.checkQueue(`${cloud.namespace}.dead`)).messageCount === 0, 10_000, 'no dead letters left');
		// A reply address that is not a Direct Reply-To one is refused, once per host the message reached.
		const refusedAddresses = agents.flatMap(agent => agent.logs().split('\n').filter(line => line.includes('refused to reply to a queue that is not a Direct Reply-To address')));
		const namedQueues = messages.filter(message => message.replyTo === 'not-a-reply-address').reduce((sum, message) => sum + (message.target === 'all' ? 2 : 1), 0);
		expect(refusedAddresses).toHaveLength(namedQueues);
		for (const agent of agents) {
			expect(agent.process.exitCode).toBeNull();
			// The lines themselves (with their error), so a failure says what went wrong.
			const failures = agent
				.logs()
				.split('\n')
				.filter(line => ['request handling failed', 'request handler threw', '"reply failed"'].some(failure => line.includes(failure)));
			expect(failures).toEqual([]);
		}

		const kinds = new Set(messages.map(message => message.kind));
		process.stdout.write(
			`fuzz figures: ${JSON.stringify({messages: messages.length, kinds: kinds.size, withReplyAddress: withReply.length, repliesChecked: withReply.reduce((sum, message) => sum + expected(message), 0), busyReplies: withReply.reduce((sum, message) => sum + (replies.get(message.correlationId) ?? []).filter(reply => reply.code === 'busy').length, 0), sendMs: Math.round(sendMs), goodStarts: 20 + before.length, vmsLost: survivors.length - listed.length})}\n`,
		);
	});
});
