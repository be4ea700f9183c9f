/**
 * What remains, hardened (real broker, real agent): a tenant whose name the permission recipe
 * cannot express is refused, so its VMs' events never reach the tenant whose name is its prefix; an
 * agent refuses a state dir that is a symlink or someone else's; and the README's queue-length
 * policy, set on this run's namespace (and removed after), makes the broker refuse a flood.
 */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {chown, mkdir, symlink} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import amqp from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient, KloudRequestError} from '../../source/broker/client.js';
import type {KloudEvent} from '../../source/protocol/index.js';
import {AGENT_BIN, createAgentUser, createCloud, createTenant, waitFor, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';

const run = promisify(execFile);
const TAG = randomBytes(3).toString('hex');
/** An agent that does not refuse runs on: killed (SIGTERM) after this long, so nothing lingers. */
const AGENT_EXIT_MS = 30_000;
/** The README's queue limits for a namespace's queues. */
const QUEUE_LIMITS = {'max-length': 10_000, 'max-length-bytes': 64 * 1024 * 1024, overflow: 'reject-publish'};
/** … and the start queue's, shorter (a start queued behind a full queue waits for all of it). */
const START_LIMITS = {...QUEUE_LIMITS, 'max-length': 1000};
/** Starts published at once in the flood. */
const BATCH = 100;

let cloud: Cloud;
let agent: AgentHandle;
let eve: Tenant;
/** The agents' own broker user: a --tenants agent refuses to run as guest. */
let agentUser: Tenant;
let dotted: Tenant;
const clients: KloudClient[] = [];

beforeAll(async () => {
	cloud = await createCloud('hard');
	// Eve has a good name; the other tenant's name is eve's plus ".x": the recipe's `{username}`
	// pattern for eve, vm\.[^.]+\.kt-…-eve\..*, also matches that tenant's VM events.
	eve = await createTenant(cloud.namespace, 'eve', {name: `kt-${TAG}-eve`});
	dotted = await createTenant(cloud.namespace, 'dotted', {name: `kt-${TAG}-eve.x`});
	agentUser = await createAgentUser('hard');
	agent = await cloud.startAgent(`hard-${TAG}`, ['--start-paused', '--tenants'], {amqpUrl: agentUser.url});
}, 180_000);

afterAll(async () => {
	await Promise.all(clients.map(async client => client.close()));
	await cloud?.cleanup();
	await Promise.all([eve, dotted, agentUser].map(async tenant => tenant?.remove()));
}, 60_000);

async function connect(tenant: Tenant, options: {readonly watchEvents?: boolean} = {}): Promise<KloudClient> {
	const name = `kloud-test-hardening@${tenant.name}`;
	const client = await KloudClient.connect({url: tenant.url, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true, agentUsers: [agentUser.name], ...options});
	clients.push(client);
	return client;
}

describe('tenant names the recipe cannot express', () => {
	it('a tenant named like another\'s prefix plus ".x" is refused, and its prefix sees none of its events', async () => {
		const watchEve = await connect(eve, {watchEvents: true});
		const asEve = await connect(eve);
		const asDotted = await connect(dotted);
		const seen: KloudEvent[] = [];
		watchEve.onEvent(event => seen.push(event));

		const outcome = await asDotted.start({image: 'blank'}, {timeoutMs: 20_000}).then(
			vm => ({vm}),
			(error: unknown) => ({error}),
		);
		// Eve's own start: its vm.started proves eve's event queue was bound and had its chance.
		const own = await asEve.start({image: 'blank'}, {timeoutMs: 20_000});
		await waitFor(() => seen.some(event => event.type === 'vm.started' && event.body.vm.id === own.id), 10_000, 'eve\'s own vm.started');
		const leaked = seen.filter(event => 'vm' in event.body && event.body.vm.owner === dotted.name).map(event => `${event.type} ${'vm' in event.body ? event.body.vm.id : ''}`);
		expect(leaked, `events of ${dotted.name}'s VMs that ${eve.name} received`).toEqual([]);
		expect('error' in outcome, `${dotted.name}'s start was served: ${JSON.stringify(outcome)}`).toBe(true);
		const error = (outcome as {error: unknown}).error;
		expect(error).toBeInstanceOf(KloudRequestError);
		expect((error as KloudRequestError).code).toBe('forbidden');
		expect((error as Error).message).toMatch(/cannot be a tenant: the permission recipe puts it unescaped into a regex and a routing key/);
		await asEve.stop(own.id, {kill: true, timeoutMs: 5000});
	}, 60_000);

	it('in --tenants mode the agent will not start with an --admins name the recipe cannot express', async () => {
		const result = await run(process.execPath, [AGENT_BIN, '--amqp', agentUser.url, '--tenants', '--admins', 'ops.team', '--state-dir', join(cloud.dir, 'never'), '--namespace', cloud.namespace], {timeout: AGENT_EXIT_MS}).then(
			() => ({code: 0, stderr: ''}),
			(error: {code: number; stderr: string}) => error,
		);
		expect(result.code).toBe(2);
		expect(result.stderr).toMatch(/^kloud-agent: --admins: user name "ops\.team" cannot be a tenant/);
	}, 60_000);
});

describe('the state dir', () => {
	const cases = [
		{
			what: 'a symbolic link',
			async make(path: string) {
				await mkdir(`${path}-real`, {mode: 0o700});
				await symlink(`${path}-real`, path);
			},
			expected: /is a symbolic link/,
		},
		{
			what: 'owned by another user (65534)',
			async make(path: string) {
				await mkdir(path, {mode: 0o700});
				await chown(path, 65_534, 65_534);
			},
			expected: /is owned by uid 65534, not by root or the agent/,
		},
	];
	for (const {what, make, expected} of cases) {
		it(`an agent refuses one that is ${what}, before it touches anything`, async () => {
			const path = join(cloud.dir, `state-${what.length}`);
			await make(path);
			const result = await run(process.execPath, [AGENT_BIN, '--state-dir', path, '--namespace', cloud.namespace, '--host-id', 'refused'], {timeout: AGENT_EXIT_MS}).then(
				() => ({code: 0, stderr: ''}),
				(error: {code: number; stderr: string}) => error,
			);
			expect(result.code).toBe(2);
			expect(result.stderr).toMatch(new RegExp(`^kloud-agent: state dir ${path} ${expected.source}`));
		}, 60_000);
	}
});

describe('broker limits from the recipe', () => {
	it('the queue-length policies on the namespace make the broker refuse a flood of starts (reject-publish)', async () => {
		const policy = `kloud-limits-${TAG}`;
		const startPolicy = `kloud-start-limits-${TAG}`;
		const prefix = `^${cloud.namespace.replaceAll('.', '\\.')}\\.`;
		await run('rabbitmqctl', ['-q', 'set_policy', '-p', '/', policy, prefix, JSON.stringify(QUEUE_LIMITS), '--apply-to', 'queues']);
		await run('rabbitmqctl', ['-q', 'set_policy', '-p', '/', '--priority', '1', startPolicy, `${prefix}start$`, JSON.stringify(START_LIMITS), '--apply-to', 'queues']);
		try {
			// No agent takes starts now: they wait in the (durable, quorum) start queue.
			await agent.stop();
			const startQueue = `${cloud.namespace}.start`;
			await waitFor(async () => (await run('rabbitmqctl', ['-q', 'list_queues', '-p', '/', 'name', 'policy'])).stdout.includes(`${startQueue}\t${startPolicy}`), 15_000, 'the start policy on the start queue');
			const connection = await amqp.connect(cloud.amqpUrl);
			let nacked = 0;
			const flood = START_LIMITS['max-length'] + 500;
			let kept = 0;
			try {
				const channel = await connection.createConfirmChannel();
				const body = Buffer.from('{"flood":true}');
				// In batches of 100, each confirmed before the next: a quorum queue counts what it has
				// applied, so publishes still in flight land past the limit (10,500 sent at once left
				// 10,400 in a queue of 10,000).
				for (let sent = 0; sent < flood; sent += BATCH) {
					await Promise.all(
						Array.from(
							{length: BATCH},
							async () =>
								new Promise<void>(resolve => {
									channel.sendToQueue(startQueue, body, {}, error => {
										if (error) {
											nacked++;
										}

										resolve();
									});
								}),
						),
					);
				}

				// Asked of the queue itself (`list_queues` shows figures that lag by seconds).
				kept = (await channel.checkQueue(startQueue)).messageCount;
			} finally {
				await connection.close();
			}

			console.info(`queue limits: ${flood} published, ${nacked} refused, ${kept} kept`);
			// Nobody consumes: every start the broker took is still there, and the rest it refused.
			expect(kept + nacked).toBe(flood);
			expect(nacked).toBeGreaterThan(0);
			// The limit, give or take the batch in flight when it was reached.
			expect(kept).toBeGreaterThanOrEqual(START_LIMITS['max-length']);
			expect(kept).toBeLessThanOrEqual(START_LIMITS['max-length'] + BATCH);
		} finally {
			await run('rabbitmqctl', ['-q', 'clear_policy', '-p', '/', startPolicy]);
			await run('rabbitmqctl', ['-q', 'clear_policy', '-p', '/', policy]);
		}
	}, 120_000);
});
