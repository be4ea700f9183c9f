/**
 * Exactly one VM per start, even without a client token: a start sent raw over AMQP (as a client
 * of its own would, no token), and the tutorial's `start-vm` (no token, no id, no reply address),
 * each taken by an agent that is then frozen (SIGSTOP) before it acks, until the broker drops its
 * connection and puts the message back; resumed (SIGCONT), the agent serves the first delivery and
 * the redelivery. One VM and one reply, not two. Real broker, real agent, real QEMU (paused guests).
 */
import {randomBytes, randomUUID} from 'node:crypto';
import {watch} from 'node:fs';
import amqp, {type Channel, type ChannelModel, type ConsumeMessage} from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {encode, makeRequest} from '../../source/protocol/index.js';
import {createCloud, qemuPidsUnder, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';

const TAG = randomBytes(2).toString('hex');
const SENDER = `raw-client-${TAG}`;
/** The agent's AMQP heartbeat: the broker drops a frozen agent after ≈ 3 of them. */
const AMQP_HEARTBEAT_S = 1;

let cloud: Cloud;
let agent: AgentHandle;
let connection: ChannelModel;
let channel: Channel;
let tutorialQueue: string;
/** Every reply this client got, by correlation id. */
const replies: Array<{correlationId: string; body: any}> = [];
const figures = {frozenMs: [] as number[], redeliveries: 0, vmsDoubled: 0, repliesDoubled: 0};

beforeAll(async () => {
	cloud = await createCloud('once');
	tutorialQueue = `${cloud.namespace}.vm-queue`;
	agent = await cloud.startAgent(`once-${TAG}`, ['--start-paused', '--amqp-heartbeat', String(AMQP_HEARTBEAT_S), '--tutorial-compat', '--tutorial-queue', tutorialQueue]);
	connection = await amqp.connect(cloud.amqpUrl);
	channel = await connection.createChannel();
	await channel.consume('amq.rabbitmq.reply-to', (message: ConsumeMessage | null) => {
		if (message) {
			replies.push({correlationId: String(message.properties.correlationId ?? ''), body: JSON.parse(message.content.toString())});
		}
	}, {noAck: true});
});

afterAll(async () => {
	if (agent?.process.pid) {
		try {
			process.kill(agent.process.pid, 'SIGCONT');
		} catch {}
	}

	await connection?.close().catch(() => {});
	await cloud?.cleanup();
	process.stdout.write(`start-once figures: ${JSON.stringify(figures)}\n`);
});

/** The agent's pino lines with this message. */
function logLines(message: string): Array<Record<string, unknown>> {
	return agent
		.logs()
		.split('\n')
		.filter(line => line.includes(`"msg":"${message}"`))
		.map(line => JSON.parse(line) as Record<string, unknown>);
}

/**
 * Sends with `publish` and freezes the agent the moment it shows it took the message, before it
 * could ack: it logs a line that `isTaken` accepts, or, with `isTaken` undefined, a VM directory
 * appears in its state dir (the start is under way). Waits until the broker dropped the agent (the
 * message is ready in `queue` again), then resumes it.
 */
async function freezeWhileServing(queue: string, publish: () => void, isTaken: ((line: string) => boolean) | undefined): Promise<void> {
	const pid = agent.process.pid!;
	const probe = await connection.createChannel();
	let isFrozen = false;
	const freeze = () => {
		if (!isFrozen) {
			process.kill(pid, 'SIGSTOP');
			isFrozen = true;
		}
	};

	const onData = (chunk: Buffer) => {
		if (isTaken && chunk.toString().split('\n').some(line => isTaken(line))) {
			freeze();
		}
	};

	agent.process.stdout!.on('data', onData);
	const watcher = isTaken
		? undefined
		: watch(agent.stateDir, (_event, name) => {
				if (name?.startsWith('vm-')) {
					freeze();
				}
			});
	try {
		publish();
		await waitFor(() => isFrozen, 10_000, 'the agent to take the message');
	} finally {
		agent.process.stdout!.off('data', onData);
		watcher?.close();
	}

	const frozenAt = performance.now();
	try {
		// Dropped: the broker has put the unacked message back.
		await waitFor(async () => (await probe.checkQueue(queue)).messageCount === 1, 30_000, 'the broker to drop the frozen agent');
	} finally {
		await probe.close().catch(() => {});
	}

	figures.frozenMs.push(Math.round(performance.now() - frozenAt));
	process.kill(pid, 'SIGCONT');
}

describe('a start without a client token, redelivered', () => {
	it('sent raw to the start queue, its agent frozen until the broker drops it: one VM, one reply', async () => {
		const request = makeRequest({type: 'vm.start', body: {image: 'blank'}}, {id: randomUUID(), from: SENDER, ts: Date.now()});
		const isOurs = (line: string) => line.includes('"msg":"request"') && line.includes(`"from":"${SENDER}"`);
		await freezeWhileServing(`${cloud.namespace}.start`, () => {
			channel.sendToQueue(`${cloud.namespace}.start`, Buffer.from(encode(request)), {replyTo: 'amq.rabbitmq.reply-to', correlationId: request.id, contentType: 'application/json'});
		}, line => isOurs(line) && line.includes('"isRepeat":false'));

		// The broker hands it out again; the agent, back, serves the redelivery.
		await waitFor(() => logLines('request').some(line => line.from === SENDER && line.isRepeat === true), 30_000, 'the redelivery');
		figures.redeliveries++;
		// A later start through the same queue is taken only once the redelivered one was acked
		// (prefetch 1): its reply means the redelivery was answered (or not) by then.
		const marker = makeRequest({type: 'vm.start', body: {image: 'blank'}}, {id: randomUUID(), from: `${SENDER}-marker`, ts: Date.now()});
		channel.sendToQueue(`${cloud.namespace}.start`, Buffer.from(encode(marker)), {replyTo: 'amq.rabbitmq.reply-to', correlationId: marker.id, contentType: 'application/json'});
		await waitFor(() => replies.some(reply => reply.correlationId === marker.id), 30_000, 'the reply to a later start');

		const answers = replies.filter(reply => reply.correlationId === request.id);
		figures.repliesDoubled += Math.max(0, answers.length - 1);
		const vms = (await cloud.cliJson<{vms: Array<{id: string; pid: number}>}>(['list'])).vms;
		const markerVm = replies.find(reply => reply.correlationId === marker.id)!.body.value.id as string;
		const made = vms.filter(vm => vm.id !== markerVm);
		figures.vmsDoubled += Math.max(0, made.length - 1);
		expect(made).toHaveLength(1);
		expect(answers.map(answer => answer.body.ok)).toEqual([true]);
		expect(made[0]!.id).toBe(answers[0]!.body.value.id);
		expect(await qemuPidsUnder(agent.stateDir)).toEqual(vms.map(vm => vm.pid).sort((a, b) => a - b));
		// The VM carries the token derived from the message: a start seen again finds it on any host.
		expect(answers[0]!.body.value.clientToken).toMatch(/^msg:/);
		for (const vm of vms) {
			await cloud.cli(['stop', vm.id, '--kill']);
		}
	});

	it("the tutorial's start-vm (no token, no id, no reply address), its agent frozen the same way: one VM", async () => {
		const startVm = Buffer.from(JSON.stringify({command: 'start-vm', options: {image: 'blank'}}));
		await freezeWhileServing(tutorialQueue, () => {
			channel.sendToQueue(tutorialQueue, startVm, {contentType: 'application/json'});
		}, undefined);

		// list-vms is served only after the redelivered start-vm was acked (prefetch 1).
		const listId = randomUUID();
		channel.sendToQueue(tutorialQueue, Buffer.from(JSON.stringify({command: 'list-vms'})), {replyTo: 'amq.rabbitmq.reply-to', correlationId: listId});
		await waitFor(() => replies.some(reply => reply.correlationId === listId), 30_000, 'the list-vms reply');
		const listed = replies.find(reply => reply.correlationId === listId)!.body as string[];
		figures.vmsDoubled += Math.max(0, listed.length - 1);
		expect(listed).toHaveLength(1);
		expect(await qemuPidsUnder(agent.stateDir)).toHaveLength(1);
		// Both deliveries were served: the first (frozen while it started the VM) and the redelivery.
		await waitFor(() => agent.logs().includes('"isRepeat":true,"replyTo":null,"msg":"tutorial message"'), 1000, 'the redelivery in the log');
		expect(agent.logs()).toContain('"isRepeat":false,"replyTo":null,"msg":"tutorial message"');
		figures.redeliveries++;

		// Two identical start-vm messages are still two VMs: only a redelivery is the same start.
		channel.sendToQueue(tutorialQueue, startVm, {contentType: 'application/json'});
		channel.sendToQueue(tutorialQueue, startVm, {contentType: 'application/json'});
		const secondListId = randomUUID();
		channel.sendToQueue(tutorialQueue, Buffer.from(JSON.stringify({command: 'list-vms'})), {replyTo: 'amq.rabbitmq.reply-to', correlationId: secondListId});
		await waitFor(() => replies.some(reply => reply.correlationId === secondListId), 30_000, 'the second list-vms reply');
		expect(replies.find(reply => reply.correlationId === secondListId)!.body).toHaveLength(3);
	});
});
