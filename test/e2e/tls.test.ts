/**
 * TLS for real: a RabbitMQ node (scripts/cluster.sh, one node, beside the machine's broker) serving
 * AMQPS with certificates this test makes with openssl, and wanting a client certificate. An agent
 * and the CLI connect with --ca/--cert/--key; a wrong CA, an expired client certificate, a missing
 * one and one from a CA the broker does not trust each end in a clear error, never a hang.
 */
import {execFile} from 'node:child_process';
import {mkdtemp, rm} from 'node:fs/promises';
import {randomBytes} from 'node:crypto';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {AGENT_BIN, CLI_BIN, createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {startCluster, type Cluster} from '../helpers/cluster.js';
import {makeCertificates, type TestCertificates} from '../helpers/tls.js';

const TAG = randomBytes(2).toString('hex');
/** A process that has not ended by then hangs: the point of these tests is that none does. */
const HANG_MS = 30_000;

let dir: string;
let certs: TestCertificates;
let broker: Cluster | undefined;
let cloud: Cloud | undefined;
let agent: AgentHandle | undefined;
let url: string;

beforeAll(async () => {
	dir = await mkdtemp('/tmp/kl-tls-');
	certs = await makeCertificates(dir);
	broker = await startCluster({name: 'kct', port: 5741, tlsDir: dir, nodeCount: 1});
	url = `amqps://guest:guest@127.0.0.1:${5741 + 10}`;
	// The cloud's own CLI calls and cleanup use plain AMQP; the agent and the calls below use AMQPS.
	cloud = await createCloud('tls', {amqpUrl: broker.urls[0]!});
	agent = await cloud.startAgent(`tls-${TAG}`, ['--start-paused', '--ca', certs.ca, '--cert', certs.client, '--key', certs.clientKey], {amqpUrl: url});
}, 180_000);

afterAll(async () => {
	await cloud?.cleanup().catch(() => {});
	await broker?.down();
	await rm(dir, {recursive: true, force: true});
}, 120_000);

type Run = {code: number | null; stdout: string; stderr: string; isHung: boolean};

async function runNode(args: readonly string[]): Promise<Run> {
	return new Promise(resolve => {
		execFile(process.execPath, [...args], {timeout: HANG_MS}, (error, stdout, stderr) => {
			const failure = error as (Error & {code?: number; killed?: boolean}) | null;
			resolve({code: failure ? (typeof failure.code === 'number' ? failure.code : null) : 0, stdout, stderr, isHung: failure?.killed === true});
		});
	});
}

async function cli(args: readonly string[], tls: readonly string[]): Promise<Run> {
	return runNode([CLI_BIN, ...args, '--amqp', url, '--namespace', cloud!.namespace, ...tls]);
}

describe('AMQPS with client certificates', () => {
	it('connects an agent and the CLI with --ca, --cert and --key', async () => {
		const tls = ['--ca', certs.ca, '--cert', certs.client, '--key', certs.clientKey];
		await waitFor(async () => (await cli(['hosts', '--json'], tls)).stdout.includes(agent!.hostId), 30_000, 'the agent to answer over AMQPS');
		const started = await cli(['start', '--image', 'blank', '--json'], tls);
		expect(started.stderr).toBe('');
		const vm = JSON.parse(started.stdout) as {id: string; host: string};
		expect(vm.host).toBe(agent!.hostId);
		const hosts = JSON.parse((await cli(['hosts', '--json'], tls)).stdout) as Array<{id: string; broker?: string}>;
		expect(hosts.find(host => host.id === agent!.hostId)?.broker).toBe(`127.0.0.1:${5741 + 10}`);
	});

	it.each([
		['a CA that did not sign the broker\'s certificate', () => ['--ca', certs.otherCa, '--cert', certs.client, '--key', certs.clientKey], /not signed by a CA this client trusts \(give its CA with --ca\)/],
		['an expired client certificate', () => ['--ca', certs.ca, '--cert', certs.expiredClient, '--key', certs.clientKey], /refused the client certificate: it has expired/],
		['no client certificate', () => ['--ca', certs.ca], /wants a client certificate \(give --cert and --key\)/],
		['a client certificate from a CA the broker does not trust', () => ['--ca', certs.ca, '--cert', certs.otherCa, '--key', certs.otherCa.replace(/\.pem$/, '-key.pem')], /refused the client certificate: not signed by a CA it trusts/],
	])('the CLI with %s fails with a clear error, not a hang', async (_name, tls, message) => {
		const result = await cli(['hosts', '--json'], tls());
		expect(result.isHung).toBe(false);
		expect(result.code).toBe(1);
		expect(result.stderr).toMatch(message);
		expect(result.stderr.trim().split('\n')).toHaveLength(1);
	});

	it.each([
		['a wrong CA', () => ['--ca', certs.otherCa, '--cert', certs.client, '--key', certs.clientKey], /not signed by a CA this client trusts/],
		['an expired client certificate', () => ['--ca', certs.ca, '--cert', certs.expiredClient, '--key', certs.clientKey], /it has expired/],
		['no client certificate', () => ['--ca', certs.ca], /wants a client certificate/],
	])('an agent with %s exits with a clear error instead of retrying for ever', async (_name, tls, message) => {
		const result = await runNode([
			AGENT_BIN, '--amqp', url, '--namespace', cloud!.namespace, '--host-id', `tls-bad-${TAG}`, '--images', cloud!.imagesDir,
			'--state-dir', `${dir}/bad-agent`, '--network-default', 'none', ...tls(),
		]);
		expect(result.isHung).toBe(false);
		expect(result.code).not.toBe(0);
		expect(result.stderr).toMatch(message);
	});
});
