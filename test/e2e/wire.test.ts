/**
 * The wire contract seen from a raw AMQP client: bad messages get one clear error reply, every
 * request gets exactly one reply matched by correlation id, connections carry names, and a stop
 * is routed to its owner only.
 */
import {execFile} from 'node:child_process';
import {randomUUID} from 'node:crypto';
import {promisify} from 'node:util';
import amqp, {type Channel, type ChannelModel, type ConsumeMessage} from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {AMQP_URL, createCloud, type Cloud} from '../helpers/cloud.js';

const run = promisify(execFile);
let cloud: Cloud;
let connection: ChannelModel;
let channel: Channel;
const replies = new Map<string, ConsumeMessage[]>();

beforeAll(async () => {
	cloud = await createCloud('wire');
	await Promise.all([cloud.startAgent('wire-a'), cloud.startAgent('wire-b')]);
	connection = await amqp.connect(AMQP_URL);
	channel = await connection.createChannel();
	await channel.consume(
		'amq.rabbitmq.reply-to',
		message => {
			if (message) {
				const id = String(message.properties.correlationId);
				replies.set(id, [...(replies.get(id) ?? []), message]);
			}
		},
		{noAck: true},
	);
});

afterAll(async () => {
	await connection?.close().catch(() => {});
	await cloud?.cleanup();
});

async function send(routingKey: string, body: string | object): Promise<Array<Record<string, unknown>>> {
	const correlationId = randomUUID();
	const content = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
	channel.publish(`${cloud.namespace}.commands`, routingKey, content, {replyTo: 'amq.rabbitmq.reply-to', correlationId});
	await new Promise(resolve => setTimeout(resolve, 400));
	return (replies.get(correlationId) ?? []).map(message => JSON.parse(message.content.toString()) as Record<string, unknown>);
}

const envelope = () => ({v: 1, id: randomUUID(), from: 'wire-test', ts: Date.now()});

describe('the wire contract', () => {
	it.each([
		['malformed JSON', '{"v":1,"type":', /malformed JSON/],
		['an unsupported version', {v: 7, id: 'x', from: 'y', ts: 1, type: 'vm.list', body: {}}, /unsupported protocol version 7/],
		['an unknown command', {...envelope(), type: 'vm.reboot', body: {}}, /vm\.reboot/],
		['a path as image name', {...envelope(), type: 'vm.start', body: {image: '/etc/passwd'}}, /not a path/],
		['shell metacharacters as VM id', {...envelope(), type: 'vm.kill', body: {vmId: 'vm-$(reboot)'}}, /invalid VM id/],
	])('answers %s with one {ok:false, reason} from the addressed host', async (_name, body, reason) => {
		const answers = await send('host.wire-a', body);
		expect(answers).toHaveLength(1);
		expect(answers[0]).toMatchObject({type: 'reply', from: 'wire-a', ok: false});
		expect(String(answers[0]!.reason)).toMatch(reason);
	});

	it('answers a broadcast list once per host, each matched by the correlation id', async () => {
		const answers = await send('all', {...envelope(), type: 'vm.list', body: {}});
		expect(answers.map(answer => answer.from).sort()).toEqual(['wire-a', 'wire-b']);
		expect(answers.every(answer => answer.ok === true)).toBe(true);
	});

	it('keeps serving after bad input', async () => {
		const answers = await send('host.wire-b', {...envelope(), type: 'images.list', body: {}});
		expect(answers).toEqual([expect.objectContaining({ok: true, value: {host: 'wire-b', images: [{name: 'blank', sizeBytes: expect.any(Number)}], roster: ['wire-a', 'wire-b']}})]);
	});

	it('names every connection so operators can tell them apart', async () => {
		const {stdout} = await run('rabbitmqctl', ['-q', 'list_connections', 'client_properties']);
		expect(stdout).toContain('"kloud-agent@wire-a"');
		expect(stdout).toContain('"kloud-agent@wire-b"');
	});
});
