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
import {KloudClient} from '../../source/broker/client.js';
import {VmListCache} from '../../source/broker/list-cache.js';
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

	it('answers a list that names the version it holds with vmsUnchanged and no VMs, until that host\'s VMs change', async () => {
		type Snapshot = {vms: Array<{id: string; uptimeSeconds: number | null}>; vmsVersion?: string; vmsUnchanged?: boolean};
		const valuesOf = (answers: Array<Record<string, unknown>>) => new Map(answers.map(answer => [String(answer.from), answer.value as Snapshot]));
		const first = valuesOf(await send('all', {...envelope(), type: 'vm.list', body: {}}));
		const known = {'wire-a': first.get('wire-a')!.vmsVersion!, 'wire-b': first.get('wire-b')!.vmsVersion!};
		expect(Object.values(known).every(version => /^[\w-]{22}$/.test(version))).toBe(true);

		const again = valuesOf(await send('all', {...envelope(), type: 'vm.list', body: {known}}));
		expect(again.get('wire-a')).toMatchObject({vms: [], vmsVersion: known['wire-a'], vmsUnchanged: true});
		expect(again.get('wire-b')).toMatchObject({vms: [], vmsVersion: known['wire-b'], vmsUnchanged: true});

		// A VM starts on wire-a: its list is sent in full again, with a new version; wire-b's is still unchanged.
		const vm = await cloud.cliJson<{id: string}>(['start', '--image', 'blank', '--host', 'wire-a']);
		const after = valuesOf(await send('all', {...envelope(), type: 'vm.list', body: {known}}));
		expect(after.get('wire-a')!.vms.map(entry => entry.id)).toEqual([vm.id]);
		expect(after.get('wire-a')!.vmsUnchanged).toBeUndefined();
		expect(after.get('wire-a')!.vmsVersion).not.toBe(known['wire-a']);
		expect(after.get('wire-b')).toMatchObject({vms: [], vmsUnchanged: true});

		// The client's cache fills unchanged lists back in, uptime aged: the caller sees every VM every round.
		const client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: 'kloud-test-wire-cache', sender: 'wire-cache', reconnect: false});
		try {
			const cache = new VmListCache();
			const round1 = await client.list({timeoutMs: 3000, cache});
			expect(round1.unchanged).toEqual([]);
			await new Promise(resolve => setTimeout(resolve, 1600));
			const round2 = await client.list({timeoutMs: 3000, cache});
			expect(round2.unchanged).toEqual(['wire-a', 'wire-b']);
			const uptime = (round: typeof round1) => round.replies.find(snapshot => snapshot.host.id === 'wire-a')!.vms.find(entry => entry.id === vm.id)?.uptimeSeconds;
			expect(uptime(round2)).toBeGreaterThanOrEqual(uptime(round1)! + 1);
			await cloud.cliJson(['stop', vm.id, '--kill']);
			const round3 = await client.list({timeoutMs: 3000, cache});
			expect(round3.unchanged).toEqual(['wire-b']);
			// Its host's list changed: the VM is now stopped (kept until deleted).
			expect(round3.replies.flatMap(snapshot => snapshot.vms).find(entry => entry.id === vm.id)?.state).toBe('stopped');
		} finally {
			await client.close();
		}

		// A malformed `known` is refused like any bad request.
		const refused = await send('host.wire-a', {...envelope(), type: 'vm.list', body: {known: {'wire-a': '../../etc'}}});
		expect(refused).toHaveLength(1);
		expect(refused[0]).toMatchObject({ok: false, code: 'bad_request'});
		expect(String(refused[0]!.reason)).toMatch(/invalid VM list version/);
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
