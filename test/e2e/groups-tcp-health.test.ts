/**
 * The `tcp:PORT` health check end to end (root): one agent whose bridges, dnsmasq and QEMU live in
 * a network namespace of the test's own (`--netns`), a group of one demo guest on the private
 * network whose user-data serves HTTP on port 8080 for 40 s and then stops listening. `vm.probe`
 * (the host connecting from inside the namespace) finds the port open, then closed; the member is
 * replaced once it has failed for `--unhealthy-after` (10 s), the new one started first. The boot
 * grace (120 s, counted from creation) is long because a demo guest under TCG on a busy 2-core
 * machine may take a minute to boot and serve; a member that served fails sooner than that.
 */
import {writeFile} from 'node:fs/promises';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import {parseMemberToken, type Vm} from '../../source/protocol/index.js';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {createLab, missingNetworkTools, type Lab} from '../helpers/netns.js';

const missing = await missingNetworkTools();
const figures: Record<string, number> = {};
let cloud: Cloud;
let lab: Lab;
let client: KloudClient;
let agent: AgentHandle;

async function members(): Promise<Vm[]> {
	const round = await client.list({timeoutMs: 3000});
	return round.replies.flatMap(snapshot => snapshot.vms).filter(vm => parseMemberToken(vm.clientToken)?.group === 'web');
}

const dump = () => agent.logs().split('\n').filter(line => /group|health|probe/.test(line)).slice(-30).join('\n');

describe.skipIf(missing.length > 0)(`tcp health check${missing.length > 0 ? ` (needs ${missing.join(', ')})` : ''}`, () => {
	beforeAll(async () => {
		lab = createLab();
		const netns = await lab.addNamespace('tcp');
		cloud = await createCloud('grt');
		await linkDemoImage(cloud.imagesDir);
		agent = await cloud.startAgent('gt-a', ['--memory', '128', '--netns', netns, '--network-default', 'private']);
		client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: 'kloud-test-groups-tcp', sender: 'kloud-test-groups-tcp', reconnect: true});
	}, 300_000);

	afterAll(async () => {
		await client?.close();
		await cloud?.cleanup();
		await lab?.cleanup();
		process.stdout.write(`groups-tcp-health figures: ${JSON.stringify(figures)}\n`);
	});

	it('a member that stops listening on its port is replaced 10 s later (--unhealthy-after), not after the boot grace, new one first', async () => {
		const script = `${cloud.dir}/serve.sh`;
		await writeFile(script, '#!/bin/sh\n( httpd -f -p 8080 -h / & p=$!; sleep 40; kill $p; echo "stopped listening" ) &\n');
		const created = await cloud.cli(['group', 'create', 'web', '--image', 'demo', '--size', '1', '--network', 'private', '--health', 'tcp:8080', '--health-grace', '120', '--unhealthy-after', '10', '--user-data', script]);
		expect(created.code, created.stderr).toBe(0);
		expect((await cloud.cli(['group', 'list'])).stdout).toMatch(/^web\s+demo\s+1\s+.*tcp:8080\s+none$/m);
		expect((await cloud.cli(['group', 'show', 'web'])).stdout).toMatch(/boot grace 120 s, unhealthy after 10 s without a pass/);

		let first: Vm | undefined;
		await waitFor(
			async () => {
				first = (await members()).find(vm => vm.state === 'running' && vm.ip !== null);
				return first !== undefined && (await client.probe(first.id, 8080, {host: first.host, timeoutMs: 5000})).isOpen;
			},
			180_000,
			'the member serving on port 8080',
		).catch((error: unknown) => {
			throw new Error(`${(error as Error).message}\n${dump()}`);
		});
		const open = await client.probe(first!.id, 8080, {host: first!.host, timeoutMs: 5000});
		expect(open).toMatchObject({vmId: first!.id, host: 'gt-a', address: first!.ip, port: 8080, isOpen: true});
		const closedPort = await client.probe(first!.id, 8081, {host: first!.host, timeoutMs: 5000});
		expect(closedPort).toMatchObject({isOpen: false, error: expect.stringMatching(/refused/i)});

		await waitFor(async () => !(await client.probe(first!.id, 8080, {host: first!.host, timeoutMs: 5000})).isOpen, 120_000, 'the guest to stop listening');
		const closedAt = Date.now();
		// Healthy until then: it was never replaced while it listened.
		expect((await members()).map(vm => vm.id)).toEqual([first!.id]);

		const replaced = await waitFor(async () => {
			const now = await members();
			return now.length === 1 && now[0]!.id !== first!.id && now[0]!.state === 'running';
		}, 420_000, `${first!.id} replaced`).then(members, (error: unknown) => {
			throw new Error(`${(error as Error).message}\n${dump()}`);
		});
		figures.replacedAfterClosedMs = Date.now() - closedAt;
		// Replaced once it had failed for --unhealthy-after (10 s), not the boot grace (120 s): the
		// replacement's own boot is the rest.
		expect(figures.replacedAfterClosedMs).toBeLessThan(120_000);
		expect(parseMemberToken(replaced[0]!.clientToken)).toMatchObject({slot: 0, gen: expect.any(Number)});
		expect(parseMemberToken(replaced[0]!.clientToken)!.gen).toBeGreaterThan(0);
		// Start-first: the old member went only once its successor's port answered.
		expect((await client.probe(replaced[0]!.id, 8080, {host: replaced[0]!.host, timeoutMs: 5000})).isOpen).toBe(true);
		expect(agent.logs()).toMatch(/"tcp health check failed"/);

		expect((await cloud.cli(['group', 'delete', 'web'])).code).toBe(0);
		await waitFor(async () => (await members()).length === 0, 60_000, 'the members deleted');
	}, 900_000);
});
