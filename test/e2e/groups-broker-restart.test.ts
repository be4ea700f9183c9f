/**
 * Group specs survive a broker restart: a scratch RabbitMQ node of the test's own (the machine's
 * broker is shared and is never restarted), a spec written to its groups stream, the node stopped
 * and started again, the spec read back. Skipped where rabbitmq-server is not installed.
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process';
import {existsSync} from 'node:fs';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, expect, it} from 'vitest';
import {GroupStoreClient} from '../../source/broker/group-store.js';
import {topology, type GroupSpec} from '../../source/protocol/index.js';

const run = promisify(execFile);
const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const CTL = '/usr/lib/rabbitmq/bin/rabbitmqctl';
const hasServer = existsSync(SERVER);
const PORT = 20_000 + Math.floor(Math.random() * 5000);
const NODE = `kgrp${PORT}@localhost`;
const COOKIE = 'KLOUDGROUPSTEST';
const URL_ = `amqp://guest:guest@127.0.0.1:${PORT}`;
let dir = '';
let server: ChildProcess | undefined;
let env: NodeJS.ProcessEnv = {};

async function startNode(): Promise<void> {
	server = spawn(SERVER, [], {env, stdio: 'ignore', detached: true});
	const deadline = Date.now() + 120_000;
	for (;;) {
		try {
			await run(CTL, ['-n', NODE, '--erlang-cookie', COOKIE, 'await_startup'], {env, timeout: 30_000});
			return;
		} catch (error) {
			if (Date.now() > deadline) {
				throw error;
			}

			await new Promise(resolve => setTimeout(resolve, 1000));
		}
	}
}

async function stopNode(): Promise<void> {
	await run(CTL, ['-n', NODE, '--erlang-cookie', COOKIE, 'stop'], {env, timeout: 60_000}).catch(() => {});
	if (server && server.exitCode === null) {
		await new Promise(resolve => server!.once('exit', resolve));
	}
}

beforeAll(async () => {
	if (!hasServer) {
		return;
	}

	dir = await mkdtemp('/tmp/kl-grpmq-');
	await writeFile(join(dir, 'plugins'), '[].');
	await writeFile(join(dir, 'env.conf'), '');
	await writeFile(join(dir, 'rabbitmq.conf'), '');
	env = {
		...process.env,
		HOME: dir,
		RABBITMQ_NODENAME: NODE,
		RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
		RABBITMQ_NODE_PORT: String(PORT),
		RABBITMQ_DIST_PORT: String(PORT + 10_000),
		RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
		RABBITMQ_LOG_BASE: join(dir, 'log'),
		RABBITMQ_PID_FILE: join(dir, 'pid'),
		RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'plugins'),
		RABBITMQ_CONF_ENV_FILE: join(dir, 'env.conf'),
		RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
		ERL_EPMD_ADDRESS: '127.0.0.1',
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: `-setcookie ${COOKIE} -kernel inet_dist_use_interface {127,0,0,1}`,
	};
	await startNode();
}, 180_000);

afterAll(async () => {
	if (server) {
		await stopNode();
		if (server.exitCode === null && server.pid) {
			process.kill(-server.pid, 'SIGKILL');
		}
	}

	if (dir) {
		await rm(dir, {recursive: true, force: true});
	}
}, 120_000);

it.skipIf(!hasServer)('a group spec written to the stream is read back after the broker restarted', async () => {
	const topo = topology('grp-restart');
	const open = async () => GroupStoreClient.open({url: URL_, topo, connectionName: 'kloud-test-groups-restart', timeoutMs: 10_000});
	const spec: GroupSpec = {name: 'web', uid: 'abcd1234', image: 'demo', size: 3, min: 1, max: 5, health: {kind: 'console', pattern: '^tick'}, healthGraceSeconds: 30, hostGraceSeconds: 15};
	const writer = await open();
	try {
		await writer.append({kind: 'group.put', spec});
		await writer.append({kind: 'group.put', spec: {...spec, name: 'gone'}});
		await writer.append({kind: 'group.delete', name: 'gone', uid: spec.uid});
		expect([...(await writer.groups()).keys()]).toEqual(['web']);
	} finally {
		await writer.close();
	}

	await stopNode();
	await startNode();

	const reader = await open();
	try {
		const groups = await reader.groups();
		expect([...groups.keys()]).toEqual(['web']);
		expect(groups.get('web')).toMatchObject({spec, by: 'guest'});
	} finally {
		await reader.close();
	}
}, 300_000);
