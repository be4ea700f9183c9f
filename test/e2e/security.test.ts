/**
 * Security for real: tenants are RabbitMQ users (created here with the README's permission recipe,
 * deleted afterwards); the broker validates each request's userId, the agent (`--tenants`) keeps
 * each tenant to its own VMs, admins see all. Plus least privilege on the host: QEMU under seccomp
 * (`-sandbox`) and `-runas`, state files for root's eyes only; and the TLS options reach amqplib.
 */
import {execFile} from 'node:child_process';
import {randomBytes, randomUUID} from 'node:crypto';
import {readdir, readFile, stat, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import amqp, {type ChannelModel, type ConsumeMessage} from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient, KloudRequestError} from '../../source/broker/client.js';
import type {KloudEvent, Vm} from '../../source/protocol/index.js';
import {AGENT_BIN, CLI_BIN, createAgentUser, createCloud, createTenant, qemuPidsUnder, TENANT_MAX_CONNECTIONS, waitFor, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';

const execFileAsync = promisify(execFile);
const TAG = randomBytes(2).toString('hex');
let cloud: Cloud;
let agent: AgentHandle;
let alice: Tenant;
let bob: Tenant;
let carol: Tenant;
/** The agents' own broker user (full rights on the vhost): a `--tenants` agent refuses `guest`. */
let agentUser: Tenant;
const clients: KloudClient[] = [];

async function connect(tenant: Tenant, options: {readonly watchEvents?: boolean} = {}): Promise<KloudClient> {
	const name = `kloud-test-security@${tenant.name}-${TAG}`;
	// Events count only from the agents' user.
	const client = await KloudClient.connect({url: tenant.url, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true, agentUsers: [agentUser.name], ...options});
	clients.push(client);
	return client;
}

beforeAll(async () => {
	cloud = await createCloud('sec');
	[alice, bob, carol, agentUser] = await Promise.all([createTenant(cloud.namespace, 'alice'), createTenant(cloud.namespace, 'bob'), createTenant(cloud.namespace, 'carol'), createAgentUser('sec')]);
	// The agent runs as its own user (an admin); carol is made an admin by name.
	agent = await cloud.startAgent(`sec-${TAG}`, ['--start-paused', '--tenants', '--admins', `${carol.name},someone-else`], {amqpUrl: agentUser.url});
	// Fourteen rabbitmqctl calls (each starts an Erlang VM, ≈ 1 s of CPU): slow on a loaded box.
}, 120_000);

afterAll(async () => {
	await Promise.all(clients.map(async client => client.close()));
	await cloud?.cleanup();
	await Promise.all([alice, bob, carol, agentUser].map(async tenant => tenant?.remove()));
});

async function failure(promise: Promise<unknown>): Promise<KloudRequestError> {
	const error = await promise.then(
		() => undefined,
		(error_: unknown) => error_,
	);
	expect(error).toBeInstanceOf(KloudRequestError);
	return error as KloudRequestError;
}

const ids = (vms: readonly Vm[]) => vms.map(vm => vm.id).sort();

describe('tenants', () => {
	it('each tenant lists, stops and reads only its own VMs; admins see and act on all', async () => {
		const [asAlice, asBob, asCarol, asAgentUser] = await Promise.all([connect(alice), connect(bob), connect(carol), connect(agentUser)]);
		const list = async (client: KloudClient) => (await client.list({timeoutMs: 3000})).replies.flatMap(snapshot => snapshot.vms);
		const [a1, b1] = await Promise.all([asAlice.start({image: 'blank'}, {timeoutMs: 20_000}), asBob.start({image: 'blank'}, {timeoutMs: 20_000})]);
		expect(a1.owner).toBe(alice.name);
		expect(b1.owner).toBe(bob.name);

		expect(ids(await list(asAlice))).toEqual([a1.id]);
		expect(ids(await list(asBob))).toEqual([b1.id]);
		expect(ids(await list(asCarol))).toEqual(ids([a1, b1]));
		expect(ids(await list(asAgentUser))).toEqual(ids([a1, b1]));

		// Bob cannot find alice's VM, and sent straight to its host, his stop, kill and console are refused.
		const notFound = await failure(asBob.stop(a1.id, {kill: true, timeoutMs: 3000}));
		expect(notFound.code).toBe('unknown_vm');
		for (const attempt of [
			asBob.stop(a1.id, {host: agent.hostId, kill: true, timeoutMs: 3000}),
			asBob.stop(a1.id, {host: agent.hostId, graceSeconds: 0, timeoutMs: 3000}),
			asBob.console(a1.id, {host: agent.hostId, timeoutMs: 3000}),
		]) {
			const refused = await failure(attempt);
			expect(refused.code).toBe('forbidden');
			expect(refused.message).toBe(`${agent.hostId}: VM ${a1.id} on host ${agent.hostId} belongs to another tenant`);
		}

		expect((await list(asAlice)).find(vm => vm.id === a1.id)).toMatchObject({state: 'running', pid: a1.pid});

		// One client token in two tenants' hands is two starts: tokens never cross tenants.
		const clientToken = randomUUID();
		const [a2, b2] = [await asAlice.start({image: 'blank', clientToken}, {timeoutMs: 20_000}), await asBob.start({image: 'blank', clientToken}, {timeoutMs: 20_000})];
		expect(a2.id).not.toBe(b2.id);
		expect((await asAlice.start({image: 'blank', clientToken}, {timeoutMs: 20_000})).id).toBe(a2.id);

		// An admin (carol, by --admins) stops bob's VM; alice stops her own.
		expect(await asCarol.stop(b1.id, {kill: true, timeoutMs: 5000})).toMatchObject({id: b1.id, state: 'stopped'});
		expect(await asAlice.stop(a1.id, {kill: true, timeoutMs: 5000})).toMatchObject({id: a1.id, state: 'stopped'});
		// A stopped VM stays its owner's: bob cannot stop alice's again either.
		expect((await failure(asBob.stop(a1.id, {host: agent.hostId, kill: true, timeoutMs: 3000}))).code).toBe('forbidden');
		// Nor boot, reboot or delete it.
		for (const attempt of [asBob.boot(a1.id, {host: agent.hostId, timeoutMs: 3000}), asBob.reboot(a1.id, {host: agent.hostId, timeoutMs: 3000}), asBob.delete(a1.id, {host: agent.hostId, timeoutMs: 3000})]) {
			expect((await failure(attempt)).code).toBe('forbidden');
		}

		expect((await list(asAlice)).find(vm => vm.id === a1.id)).toMatchObject({state: 'stopped'});
		// Stopped VMs are kept until deleted: the agents' user deletes them all.
		for (const vm of [a1, b1, a2, b2]) {
			expect(await asAgentUser.delete(vm.id, {timeoutMs: 5000})).toMatchObject({state: 'deleted'});
		}

		expect(await list(asAgentUser)).toEqual([]);
	});

	it('pushes a tenant the events of its own VMs only (the broker refuses it the others\')', async () => {
		const [watchAlice, asBob, asAlice] = await Promise.all([connect(alice, {watchEvents: true}), connect(bob), connect(alice)]);
		const seen: KloudEvent[] = [];
		watchAlice.onEvent(event => seen.push(event));
		const [mine, his] = await Promise.all([asAlice.start({image: 'blank'}, {timeoutMs: 20_000}), asBob.start({image: 'blank'}, {timeoutMs: 20_000})]);
		await waitFor(() => seen.some(event => event.type === 'vm.started' && event.body.vm.id === mine.id), 5000, 'alice\'s vm.started');
		await waitFor(() => seen.some(event => event.type === 'host.heartbeat'), 5000, 'a heartbeat');
		await new Promise(resolve => setTimeout(resolve, 500));
		const vmIds = seen.flatMap(event => ('vm' in event.body ? [event.body.vm.id] : []));
		expect(vmIds).toContain(mine.id);
		expect(vmIds).not.toContain(his.id);
		await asAlice.stop(mine.id, {kill: true, timeoutMs: 5000});
		await asBob.stop(his.id, {kill: true, timeoutMs: 5000});
	});

	it('refuses a request without a user id, and the broker refuses a forged one (406)', async () => {
		const connection = await amqp.connect(alice.url);
		try {
			const channel = await connection.createChannel();
			const answers: Array<Record<string, unknown>> = [];
			await channel.consume('amq.rabbitmq.reply-to', (message: ConsumeMessage | null) => message && answers.push(JSON.parse(message.content.toString()) as Record<string, unknown>), {noAck: true});
			const request = {v: 1, id: randomUUID(), from: 'raw', ts: Date.now(), type: 'vm.list', body: {}};
			channel.publish(`${cloud.namespace}.commands`, `host.${agent.hostId}`, Buffer.from(JSON.stringify(request)), {replyTo: 'amq.rabbitmq.reply-to', correlationId: request.id});
			await waitFor(() => answers.length > 0, 5000, 'the refusal');
			expect(answers[0]).toMatchObject({ok: false, code: 'forbidden'});
			expect(String(answers[0]!.reason)).toMatch(/must carry its user id/);
		} finally {
			await connection.close();
		}

		// Bob's connection claiming to be alice: the broker closes the channel, nothing reaches an agent.
		const forger = await amqp.connect(bob.url);
		try {
			const channel = await forger.createConfirmChannel();
			const closed = new Promise<Error>(resolve => channel.once('error', resolve));
			channel.publish(`${cloud.namespace}.commands`, 'all', Buffer.from('{}'), {userId: alice.name});
			const error = await closed;
			expect(error.message).toMatch(/406 \(PRECONDITION-FAILED\).*user_id property set to '.*' but authenticated user was '.*'/);
		} finally {
			await forger.close().catch(() => {});
		}

		// The recipe's topic permissions: a tenant may not publish events nor bind other tenants' VM events.
		const tenant = await amqp.connect(alice.url);
		try {
			for (const attempt of [
				async (channel: amqp.ConfirmChannel) => {
					channel.publish(`${cloud.namespace}.events`, `host.heartbeat.${agent.hostId}`, Buffer.from('{}'));
					await channel.waitForConfirms();
				},
				async (channel: amqp.ConfirmChannel) => {
					const {queue} = await channel.assertQueue('', {exclusive: true});
					await channel.bindQueue(queue, `${cloud.namespace}.events`, `vm.*.${bob.name}.#`);
				},
				async (channel: amqp.ConfirmChannel) => channel.deleteQueue(`${cloud.namespace}.start`),
			]) {
				const channel = await tenant.createConfirmChannel();
				const refused = new Promise<Error>(resolve => channel.once('error', resolve));
				await attempt(channel).catch(() => {});
				expect((await refused).message).toMatch(/403 \(ACCESS-REFUSED\)/);
			}
		} finally {
			await tenant.close().catch(() => {});
		}
	});

	it('a tenant cannot write into the namespace\'s own queues: dead letters, the controller election, the groups stream', async () => {
		// Through the default exchange every queue is reachable by name: forged dead letters (each
		// makes an agent ask the whole fleet), junk in the election queue (the leader's own ticks
		// wait behind it, then it steps down) or in the groups stream (past its retention the real
		// group specs are gone). A tenant's starts go through the command exchange instead.
		const tenant = await amqp.connect(alice.url);
		try {
			for (const queue of [`${cloud.namespace}.dead`, `${cloud.namespace}.controller`, `${cloud.namespace}.groups`, `${cloud.namespace}.start`]) {
				const channel = await tenant.createConfirmChannel();
				const refused = new Promise<Error>(resolve => channel.once('error', resolve));
				channel.publish('', queue, Buffer.from('{}'), {userId: alice.name});
				const outcome = await channel.waitForConfirms().then(
					() => `${queue}: accepted`,
					async () => (await refused).message,
				);
				expect(outcome).toMatch(/403 \(ACCESS-REFUSED\)/);
			}
		} finally {
			await tenant.close().catch(() => {});
		}

		// Her starts still go through.
		const asAlice = await connect(alice);
		const vm = await asAlice.start({image: 'blank'}, {timeoutMs: 30_000});
		expect(vm).toMatchObject({owner: alice.name, state: 'running'});
		await asAlice.delete(vm.id, {timeoutMs: 30_000});
	});

	it('a tenant cannot take the broker\'s connections from everyone: its own are capped', async () => {
		// Each connection is a file descriptor and memory on the broker: without a cap, one tenant
		// opening thousands leaves none for the agents and the other tenants.
		const opened: ChannelModel[] = [];
		let refusal: Error | undefined;
		try {
			while (opened.length <= 2 * TENANT_MAX_CONNECTIONS && refusal === undefined) {
				await amqp.connect(alice.url).then(
					connection => opened.push(connection),
					(error: unknown) => {
						refusal = error as Error;
					},
				);
			}

			expect(refusal).toBeDefined();
			expect(opened.length).toBeLessThanOrEqual(TENANT_MAX_CONNECTIONS);
			// Her CLI says why (amqplib alone says "Expected ConnectionOpenOk; got <ConnectionClose…>").
			const cli = await execFileAsync(process.execPath, [CLI_BIN, 'list', '--amqp', alice.url, '--namespace', cloud.namespace]).then(
				() => ({code: 0, stderr: ''}),
				(error: {code?: number; stderr: string}) => ({code: Number(error.code ?? 1), stderr: error.stderr}),
			);
			expect(cli.code).not.toBe(0);
			expect(cli.stderr).toMatch(/refused to open the connection after the login: this user has reached its connection limit/);
			// Meanwhile bob is served as ever.
			const {replies} = await (await connect(bob)).list({timeoutMs: 5000});
			expect(replies.map(reply => reply.host.id)).toEqual([agent.hostId]);
		} finally {
			await Promise.all(opened.map(async connection => connection.close().catch(() => {})));
		}
	});

	it('a tenant\'s flood of requests does not hold up another tenant\'s answers', async () => {
		// 5,000 lists from alice at once: her requests over her share are refused `busy`, and her
		// replies wait in a line of her own; bob's request is taken and answered in its turn.
		const connection = await amqp.connect(alice.url);
		const answers: Array<{ok?: boolean; code?: string}> = [];
		try {
			const channel = await connection.createConfirmChannel();
			await channel.consume('amq.rabbitmq.reply-to', (message: ConsumeMessage | null) => message && answers.push(JSON.parse(message.content.toString()) as {ok?: boolean; code?: string}), {noAck: true});
			for (let index = 0; index < 5000; index++) {
				const request = {v: 1, id: randomUUID(), from: 'raw', ts: Date.now(), type: 'vm.list', body: {}};
				channel.publish(`${cloud.namespace}.commands`, `host.${agent.hostId}`, Buffer.from(JSON.stringify(request)), {replyTo: 'amq.rabbitmq.reply-to', correlationId: request.id, userId: alice.name});
			}

			await channel.waitForConfirms();
			// Within the CLI's own list timeout (on the old agent: 3.9 s, behind all of alice's).
			const {replies} = await (await connect(bob)).list({timeoutMs: 2000});
			expect(replies.map(reply => reply.host.id)).toEqual([agent.hostId]);
			// Alice hears back too: her lists, or `busy` for those over her share.
			await waitFor(() => answers.length >= 1000, 30_000, 'alice\'s answers');
			expect(answers.filter(answer => answer.ok !== true && answer.code !== 'busy')).toEqual([]);
		} finally {
			await connection.close().catch(() => {});
		}
	});

	it('a tenant who keeps the start queue full does not stop another tenant\'s starts: they go to a host with room, once', async () => {
		// A real flood races the agent draining the queue (whether a publish finds a free place is
		// luck), so the test holds the start key on a full queue of its own instead: as an admin it
		// routes `start` to a queue that refuses everything (max-length 0, reject-publish), which is
		// what a publisher sees of the start queue while a tenant's flood keeps it at its limit.
		const admin = await amqp.connect(cloud.amqpUrl);
		const commands = `${cloud.namespace}.commands`;
		const startQueue = `${cloud.namespace}.start`;
		const full = `${cloud.namespace}.full-${TAG}`;
		const channel = await admin.createChannel();
		await channel.assertQueue(full, {durable: false, arguments: {'x-max-length': 0, 'x-overflow': 'reject-publish'}});
		await channel.bindQueue(full, commands, 'start');
		await channel.unbindQueue(startQueue, commands, 'start');
		try {
			// Alice's start is refused by the broker, as the flood would have it.
			const asAlice = await amqp.connect(alice.url);
			try {
				const confirms = await asAlice.createConfirmChannel();
				const request = {v: 1, id: randomUUID(), from: 'raw', ts: Date.now(), type: 'vm.start', body: {image: 'blank'}};
				const isRefused = await new Promise<boolean>(resolve => {
					confirms.publish(commands, 'start', Buffer.from(JSON.stringify(request)), {userId: alice.name}, error => resolve(Boolean(error)));
				});
				expect(isRefused).toBe(true);
			} finally {
				await asAlice.close().catch(() => {});
			}

			// Bob's start goes through all the same, to the one host with room, and makes one VM (the
			// old client retried the full queue until its 10 s were up, and failed).
			const asBob = await connect(bob);
			const before = (await qemuPidsUnder(agent.stateDir)).length;
			const vm = await asBob.start({image: 'blank'}, {timeoutMs: 10_000});
			expect(vm).toMatchObject({host: agent.hostId, owner: bob.name});
			expect((await qemuPidsUnder(agent.stateDir)).length).toBe(before + 1);
			expect((await asBob.list({timeoutMs: 5000})).replies.flatMap(reply => reply.vms).filter(listed => listed.id === vm.id)).toHaveLength(1);
			// The CLI too.
			const cli = await execFileAsync(process.execPath, [CLI_BIN, 'start', '--image', 'blank', '--json', '--timeout', '10', '--amqp', bob.url, '--namespace', cloud.namespace]);
			expect((JSON.parse(cli.stdout) as Vm).owner).toBe(bob.name);
		} finally {
			await channel.bindQueue(startQueue, commands, 'start');
			await channel.deleteQueue(full);
			await admin.close();
		}
	}, 60_000);

	it('a tenant cannot wedge an agent with forged reply addresses: every request is still acked, others still served', async () => {
		// A Direct Reply-To address whose pid is cut short (what the agent reads a node name from),
		// sent more times than the agent's prefetch: unacked, they would stop its host queue for all.
		// Half of them well formed but naming a node that does not exist (RabbitMQ crashes the
		// publishing channel on those), each a different one.
		const forged = (index: number) => {
			const node = Buffer.from(`reply@${randomBytes(4).toString('hex')}`);
			const pid = index % 2 === 0 ? Buffer.from([131, 88, 118, 0]) : Buffer.concat([Buffer.from([131, 88, 118, 0, node.length]), node, Buffer.alloc(12)]);
			return `amq.rabbitmq.reply-to.${pid.toString('base64')}.${randomBytes(4).toString('hex')}`;
		};
		const connection = await amqp.connect(alice.url);
		try {
			const channel = await connection.createConfirmChannel();
			for (let index = 0; index < 200; index++) {
				const request = {v: 1, id: randomUUID(), from: 'raw', ts: Date.now(), type: 'vm.list', body: {}};
				channel.publish(`${cloud.namespace}.commands`, `host.${agent.hostId}`, Buffer.from(JSON.stringify(request)), {replyTo: forged(index), correlationId: request.id, userId: alice.name});
			}

			await channel.waitForConfirms();
		} finally {
			await connection.close();
		}

		// Bob is served meanwhile.
		const {replies} = await (await connect(bob)).list({timeoutMs: 10_000});
		expect(replies.map(reply => reply.host.id)).toEqual([agent.hostId]);
		expect(agent.logs()).not.toContain('request handling failed');
		// Each forged address crashes the agent's reply connection (RabbitMQ closes it, 541): after
		// ten, alice gets no more replies to unknown nodes, so she cost the others ten reconnects, not 200.
		// (The agent may still be answering the last of them: wait for those.)
		const refused = () => agent.logs().split('\n').filter(line => line.includes('this sender\'s reply addresses kept crashing the connection'));
		await waitFor(() => refused().length >= 200 - 10, 20_000, 'alice\'s replies refused').catch(() => {});
		expect(refused().length).toBeGreaterThanOrEqual(200 - 10);
		expect(refused().every(line => line.includes(alice.name))).toBe(true);
		// And alice herself, once her flood is answered (until then her share is full: \`busy\`).
		const asAlice = await connect(alice);
		await waitFor(async () => (await asAlice.list({timeoutMs: 2000})).replies.length === 1, 20_000, 'alice\'s own list');
	});

	it('an agent refuses to serve the tutorial\'s user-less messages in tenants mode', async () => {
		await expect(cloud.startAgent(`sec-tut-${TAG}`, ['--tenants', '--tutorial-compat'])).rejects.toThrow(/--tutorial-compat cannot go with --tenants/);
	});
});

describe('least privilege on the host', () => {
	it('runs QEMU under seccomp, keeps every state file private, and drops QEMU to --runas', async () => {
		const asAgentUser = await connect(agentUser);
		const vm = await asAgentUser.start({image: 'blank'}, {timeoutMs: 20_000});
		const status = await readFile(`/proc/${vm.pid}/status`, 'utf8');
		// 2: seccomp filter mode.
		expect(status).toMatch(/^Seccomp:\s+2$/m);
		const cmdline = (await readFile(`/proc/${vm.pid}/cmdline`, 'utf8')).split('\0');
		expect(cmdline[cmdline.indexOf('-sandbox') + 1]).toBe('on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');

		// Nothing in the state dir is for group or others: 0700 directories, 0600 files (the QMP socket too).
		const modes: Record<string, string> = {};
		const visit = async (path: string, name: string) => {
			const info = await stat(path);
			modes[name] = (info.mode & 0o777).toString(8);
			if (info.isDirectory()) {
				for (const entry of await readdir(path)) {
					await visit(join(path, entry), `${name}/${entry}`);
				}
			}
		};

		await visit(agent.stateDir, '.');
		const files = Object.keys(modes).map(name => name.replace(vm.id, 'VM'));
		expect(files).toEqual(expect.arrayContaining(['./VM/disk.qcow2', './VM/console.log', './VM/qmp.sock', './VM/qemu.pid', './VM/vm.json']));
		expect(Object.entries(modes).filter(([, mode]) => (Number.parseInt(mode, 8) & 0o077) !== 0)).toEqual([]);
		await asAgentUser.stop(vm.id, {kill: true, timeoutMs: 5000});

		// With --runas, QEMU opens everything as root, then runs the guest as that user.
		const runas = await cloud.startAgent(`sec-run-${TAG}`, ['--start-paused', '--runas', 'nobody']);
		const dropped = await asAgentUser.start({image: 'blank', host: runas.hostId}, {timeoutMs: 20_000});
		const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(await readFile(`/proc/${dropped.pid}/status`, 'utf8'));
		expect(uid?.slice(1)).toEqual(['65534', '65534']);
		expect(await asAgentUser.stop(dropped.id, {host: runas.hostId, graceSeconds: 0, timeoutMs: 5000})).toMatchObject({state: 'stopped'});
		expect(await qemuPidsUnder(runas.stateDir)).toEqual([]);
		await runas.stop();
	});
});

describe('transport', () => {
	const run = async (bin: string, args: readonly string[]) =>
		execFileAsync(process.execPath, [bin, ...args]).then(
			({stdout, stderr}) => ({code: 0, stdout, stderr}),
			(error: {code?: number; stdout: string; stderr: string}) => ({code: Number(error.code ?? 1), stdout: error.stdout, stderr: error.stderr}),
		);

	it('takes --ca, --cert and --key for amqps:// and refuses them with amqp://', async () => {
		const pem = join(cloud.dir, 'ca.pem');
		await writeFile(pem, '-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n');
		expect(await run(CLI_BIN, ['list', '--amqp', 'amqp://127.0.0.1:5672', '--ca', pem])).toMatchObject({code: 2, stderr: 'kloud-tui: --ca, --cert and --key need an amqps:// broker URL\n'});
		expect(await run(CLI_BIN, ['list', '--amqp', 'amqps://127.0.0.1:5671', '--cert', pem])).toMatchObject({code: 2, stderr: 'kloud-tui: --cert and --key go together\n'});
		expect(await run(CLI_BIN, ['list', '--amqp', 'amqps://127.0.0.1:5671', '--ca', '/nonexistent/ca.pem'])).toMatchObject({code: 2, stderr: expect.stringMatching(/^kloud-tui: cannot read --ca \/nonexistent\/ca\.pem: ENOENT/)});
		// Accepted and handed to the TLS socket: here no broker listens for TLS, so it cannot connect.
		const tls = await run(CLI_BIN, ['list', '--amqp', 'amqps://127.0.0.1:5671', '--ca', pem, '--timeout', '1']);
		expect(tls.code).toBe(1);
		expect(tls.stderr).toMatch(/^kloud-tui: cannot reach the broker at amqps:\/\/127\.0\.0\.1:5671/);
		const agentTls = await run(AGENT_BIN, ['--amqp', 'amqp://127.0.0.1:5672', '--ca', pem, '--state-dir', join(cloud.dir, 'unused')]);
		expect(agentTls).toMatchObject({code: 2, stderr: 'kloud-agent: --ca, --cert and --key need an amqps:// broker URL\n'});
	});
});
