/**
 * No path from a guest to the control plane, tried as a hostile tenant would: a VM booted from the
 * demo image with `--network user` (QEMU's user-mode NAT, where the guest's 10.0.2.2 stands for the
 * host's 127.0.0.1) whose user-data opens TCP to 10.0.2.2:5672, the broker, and to a service this
 * test listens with on the host's loopback. Both must fail, and the service must see no connection.
 * The VM runs under a `--tenants` agent that logs in as an agent user of its own; an agent in
 * tenants mode refuses to run as `guest`. One guest boot in all.
 */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {readlink} from 'node:fs/promises';
import {createServer, type Server} from 'node:net';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {USERDATA_DONE_MARKER} from '../../agent/image/demo-image.js';
import {KloudClient} from '../../source/broker/client.js';
import {AGENT_BIN, createAgentUser, createCloud, createTenant, waitFor, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';

const execFileAsync = promisify(execFile);
const TAG = randomBytes(2).toString('hex');
/** Generous for a loaded CI box: a lone boot takes ≈ 6–10 s here, the probes at most 2 × 10 s. */
const DONE_TIMEOUT_MS = 150_000;
const SERVICE_BANNER = 'KLOUD-LOOPBACK-SERVICE';

let cloud: Cloud;
let agent: AgentHandle;
let agentUser: Tenant;
let mallory: Tenant;
let service: Server;
let servicePort = 0;
/** Who connected to the loopback service: it must stay empty. */
const serviceConnections: string[] = [];
const clients: KloudClient[] = [];

/**
 * The attacker's user-data (busybox): the AMQP protocol header to the broker (which answers with a
 * Connection.Start naming `RabbitMQ`), nothing to the loopback service (which greets with a
 * banner). One line per target: `ATTACK <name> open: <answer>` or `ATTACK <name> refused: <why>`.
 */
function attackScript(port: number): string {
	return `#!/bin/sh
probe() {
	answer=$(printf "$3" | timeout 10 nc -w 5 10.0.2.2 "$2" 2>/tmp/nc.err | head -c 4096 | tr -cd 'A-Za-z0-9 .:()-')
	case $answer in
	*"$4"*) echo "ATTACK $1 open: $answer" ;;
	*) echo "ATTACK $1 refused: $(tr -cd 'A-Za-z0-9 .:()-' </tmp/nc.err)" ;;
	esac
}
probe broker 5672 'AMQP\\000\\000\\011\\001' RabbitMQ
probe loopback ${port} '' ${SERVICE_BANNER}
`;
}

async function connect(user: Tenant): Promise<KloudClient> {
	const name = `kloud-test-isolation@${user.name}-${TAG}`;
	const client = await KloudClient.connect({url: user.url, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true});
	clients.push(client);
	return client;
}

const AGENT_ARGS = ['--tenants', '--network-default', 'user', '--memory', '128'];

beforeAll(async () => {
	cloud = await createCloud('iso');
	await linkDemoImage(cloud.imagesDir);
	[agentUser, mallory] = await Promise.all([createAgentUser('iso'), createTenant(cloud.namespace, 'mallory')]);
	service = createServer(socket => {
		serviceConnections.push(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`);
		socket.end(`${SERVICE_BANNER}\n`);
	});
	await new Promise<void>(resolve => service.listen(0, '127.0.0.1', resolve));
	servicePort = (service.address() as {port: number}).port;
	agent = await cloud.startAgent(`iso-${TAG}`, AGENT_ARGS, {amqpUrl: agentUser.url});
}, 300_000);

afterAll(async () => {
	await Promise.all(clients.map(async client => client.close()));
	await cloud?.cleanup();
	await Promise.all([agentUser, mallory].map(async user => user?.remove()));
	await new Promise(resolve => service?.close(resolve));
}, 60_000);

describe('a guest cannot reach the control plane', () => {
	it('a user-mode guest cannot open TCP to the broker or to any service on the host\'s loopback', async () => {
		const asMallory = await connect(mallory);
		const userData = attackScript(servicePort);
		const vm = await asMallory.start({image: 'demo', network: 'user', userData}, {timeoutMs: 30_000});
		expect(vm).toMatchObject({owner: mallory.name, network: 'user', state: 'running'});

		let text = '';
		let lastRead = 0;
		try {
			await waitFor(
				async () => {
					// A console round now and then: reads must not eat the CPU the guest boots on.
					if (Date.now() - lastRead < 1000) {
						return false;
					}

					lastRead = Date.now();
					text = (await asMallory.console(vm.id, {host: vm.host, timeoutMs: 5000})).data;
					return text.includes(USERDATA_DONE_MARKER);
				},
				DONE_TIMEOUT_MS,
				`${USERDATA_DONE_MARKER} on ${vm.id}'s console`,
			);
		} catch (error) {
			throw new Error(`${(error as Error).message}\n--- console ---\n${text}\n--- agent ---\n${agent.logs().slice(-3000)}`, {cause: error});
		}

		const attacks = text.split(/\r?\n/).filter(line => line.startsWith('ATTACK '));
		console.info(`guest isolation: ${JSON.stringify(attacks)}; loopback service connections: ${serviceConnections.length}`);
		// The guest had a network (QEMU's DHCP answered) and tried both targets...
		expect(text).toContain(`KLOUD-READY hostname=${vm.id} ip=10.0.2.15`);
		expect(attacks).toHaveLength(2);
		// ...and got through to neither.
		expect(attacks[0]).toMatch(/^ATTACK broker refused: /);
		expect(attacks[1]).toMatch(/^ATTACK loopback refused: /);
		expect(serviceConnections).toEqual([]);

		// QEMU itself runs in a network namespace of its own (an empty one: nothing listens there).
		expect(await readlink(`/proc/${vm.pid!}/ns/net`)).not.toBe(await readlink('/proc/self/ns/net'));

		// Still found again: a restarted agent adopts the VM (same pid), and its kill ends it.
		await agent.stop();
		agent = await cloud.startAgent(`iso-${TAG}`, AGENT_ARGS, {amqpUrl: agentUser.url});
		const listed = (await asMallory.list({timeoutMs: 3000})).replies.flatMap(snapshot => snapshot.vms);
		expect(listed.map(listedVm => [listedVm.id, listedVm.state, listedVm.pid])).toEqual([[vm.id, 'running', vm.pid]]);
		expect(await asMallory.stop(vm.id, {host: vm.host, kill: true, timeoutMs: 5000})).toMatchObject({id: vm.id, state: 'stopped'});
	}, DONE_TIMEOUT_MS + 60_000);
});

describe('agents in tenants mode', () => {
	it('refuse to log in to the broker as guest', async () => {
		const run = async (url: string) =>
			execFileAsync(process.execPath, [AGENT_BIN, '--tenants', '--amqp', url, '--namespace', cloud.namespace, '--state-dir', join(cloud.dir, 'unused')], {timeout: 15_000}).then(
				({stderr}) => ({code: 0, stderr}),
				(error: {code?: number; stderr: string}) => ({code: Number(error.code ?? 1), stderr: error.stderr}),
			);
		// Spelled out, and left out (amqplib then logs in as guest).
		for (const url of ['amqp://guest:guest@127.0.0.1:5672', 'amqp://127.0.0.1:5672']) {
			const result = await run(url);
			expect(result.code, result.stderr).toBe(2);
			expect(result.stderr).toMatch(/^kloud-agent: --tenants needs a broker user of the agents' own, not "guest"/);
		}
	});
});
