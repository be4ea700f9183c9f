/**
 * Groups end to end: a real broker, three real agents (each standing for controller), real QEMU
 * (TCG) booting the demo image without a NIC. One group of 3 lives through the file: spread one
 * per host → a member's QEMU killed -9 (restart policy `no`) is replaced → the controller's agent
 * killed -9: another is elected, the spec is still there, the group is whole again and nothing is
 * doubled → the agent back with its old member: the extra is deleted → `group delete` removes the
 * members. A second group checks the console health check.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import {parseMemberToken, type Vm} from '../../source/protocol/index.js';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';

const BOOT_TIMEOUT_MS = 180_000;
const figures: Record<string, number> = {};
let cloud: Cloud;
let client: KloudClient;
const agents = new Map<string, AgentHandle>();
const HOSTS = ['grp-a', 'grp-b', 'grp-c'];

async function listVms(): Promise<Vm[]> {
	const round = await client.list({timeoutMs: 3000});
	return round.replies.flatMap(snapshot => snapshot.vms);
}

async function membersOf(group: string): Promise<Vm[]> {
	return (await listVms()).filter(vm => parseMemberToken(vm.clientToken)?.group === group);
}

const running = (vms: readonly Vm[]) => vms.filter(vm => vm.state === 'running');
const slots = (vms: readonly Vm[]) => vms.map(vm => parseMemberToken(vm.clientToken)!.slot).sort();

/** When the agent last logged `message` (epoch ms), or 0. */
function lastLogged(agent: AgentHandle, message: string): number {
	const line = agent.logs().split('\n').filter(entry => entry.includes(`"msg":"${message}"`)).at(-1);
	return line ? Number(/"time":(\d+)/.exec(line)?.[1] ?? 0) : 0;
}

/** Agents that believe they lead: elected, and not deposed since (a hung one cannot know it was). */
function leaders(): AgentHandle[] {
	return [...agents.values()].filter(
		agent => agent.process.exitCode === null && agent.process.signalCode === null && lastLogged(agent, 'elected group controller') > lastLogged(agent, 'no longer the group controller'),
	);
}

/** The agent elected last among those that believe they lead. */
function leader(): AgentHandle | undefined {
	return leaders().sort((a, b) => lastLogged(b, 'elected group controller') - lastLogged(a, 'elected group controller'))[0];
}

function dump(): string {
	return [...agents.values()].map(agent => `--- ${agent.hostId} ---\n${agent.logs().split('\n').filter(line => /group|controller/.test(line)).slice(-30).join('\n')}`).join('\n');
}

async function waitForGroup(group: string, predicate: (members: Vm[]) => boolean, what: string, timeoutMs = BOOT_TIMEOUT_MS): Promise<Vm[]> {
	let members: Vm[] = [];
	try {
		await waitFor(
			async () => {
				members = await membersOf(group);
				return predicate(members);
			},
			timeoutMs,
			what,
		);
	} catch (error) {
		throw new Error(`${(error as Error).message}\nmembers: ${JSON.stringify(members.map(vm => [vm.id, vm.host, vm.state, vm.clientToken]))}\n${dump()}`, {cause: error});
	}

	return members;
}

const agentArgs = ['--memory', '128', '--max-vms', '4'];

beforeAll(async () => {
	cloud = await createCloud('grp');
	await linkDemoImage(cloud.imagesDir);
	for (const host of HOSTS) {
		agents.set(host, await cloud.startAgent(host, agentArgs));
	}

	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: 'kloud-test-groups', sender: 'kloud-test-groups', reconnect: true});
	await waitFor(() => leader() !== undefined, 20_000, 'a controller to be elected');
}, 300_000);

afterAll(async () => {
	await client?.close();
	await cloud?.cleanup();
	if (Object.keys(figures).length > 0) {
		process.stdout.write(`groups figures: ${JSON.stringify(figures)}\n`);
	}
});

describe('a group of 3 over 3 agents', () => {
	it('exactly one controller is elected', () => {
		const elected = [...agents.values()].filter(agent => agent.logs().includes('"elected group controller"'));
		expect(elected).toHaveLength(1);
	});

	it('create → 3 running members, one per host; list shows their GROUP; group list counts them', async () => {
		const created = await cloud.cli(['group', 'create', 'web', '--image', 'demo', '--size', '3', '--max', '5', '--restart', 'no', '--host-grace', '5', '--json']);
		expect(created.stderr).toBe('');
		expect(JSON.parse(created.stdout)).toMatchObject({name: 'web', size: 3, image: 'demo'});
		const again = await cloud.cli(['group', 'create', 'web', '--image', 'demo', '--size', '3']);
		expect(again.code).toBe(1);
		expect(again.stderr).toMatch(/exists already/);

		const members = await waitForGroup('web', vms => running(vms).length === 3, '3 running members');
		expect(new Set(members.map(vm => vm.host))).toEqual(new Set(HOSTS));
		expect(slots(members)).toEqual([0, 1, 2]);

		const table = await cloud.cli(['list']);
		expect(table.stdout).toMatch(/^HOST\s+VM\s+IMAGE\s+STATE.*GROUP$/m);
		expect(table.stdout.split('\n').filter(line => / web$/.test(line))).toHaveLength(3);
		const groups = await cloud.cliJson(['group', 'list']);
		expect(groups).toEqual([expect.objectContaining({name: 'web', size: 3, running: 3, members: 3, hosts: 3})]);
	}, BOOT_TIMEOUT_MS + 30_000);

	it('a member whose QEMU is killed -9 (policy no) is replaced, new one first', async () => {
		const [victim] = running(await membersOf('web'));
		const killedAt = Date.now();
		process.kill(victim!.pid!, 'SIGKILL');
		const members = await waitForGroup('web', vms => !vms.some(vm => vm.id === victim!.id) && running(vms).length === 3, `${victim!.id} replaced`);
		figures.replacementMs = Date.now() - killedAt;
		expect(slots(members)).toEqual([0, 1, 2]);
		const replacement = members.find(vm => parseMemberToken(vm.clientToken)!.slot === parseMemberToken(victim!.clientToken)!.slot)!;
		expect(parseMemberToken(replacement.clientToken)!.gen).toBe(parseMemberToken(victim!.clientToken)!.gen + 1);
	}, BOOT_TIMEOUT_MS);

	it("the controller's agent killed -9: another takes over, the spec survives, the group is whole and nothing doubled", async () => {
		const old = leader()!;
		const before = await membersOf('web');
		const killedAt = Date.now();
		await old.stop('SIGKILL');
		await waitFor(() => leaders().some(agent => agent !== old), 60_000, 'another controller');
		figures.failoverMs = Date.now() - killedAt;
		const shown = await cloud.cliJson(['group', 'show', 'web']);
		expect(shown.spec).toMatchObject({name: 'web', size: 3});

		// The dead agent's member is out of sight: it is replaced on the two hosts left.
		const members = await waitForGroup('web', vms => running(vms).length === 3 && vms.every(vm => vm.host !== old.hostId), 'the group whole on 2 hosts');
		expect(slots(members)).toEqual([0, 1, 2]);
		const survivors = before.filter(vm => vm.host !== old.hostId).map(vm => vm.id);
		expect(members.filter(vm => survivors.includes(vm.id)).map(vm => vm.id).sort()).toEqual(survivors.sort());

		// The agent comes back with its old member (VMs outlive their agent): the extra is deleted.
		agents.set(old.hostId, await cloud.startAgent(old.hostId, agentArgs));
		const whole = await waitForGroup(
			'web',
			vms => vms.length === 3 && running(vms).length === 3,
			'the extra member deleted',
		);
		expect(slots(whole)).toEqual([0, 1, 2]);
		expect(leaders()).toHaveLength(1);
	}, 2 * BOOT_TIMEOUT_MS);

	it("a host's agent stopped: its members are replaced elsewhere after the grace; back, the extras are deleted", async () => {
		const current = leader()!;
		const before = await membersOf('web');
		const host = before.map(vm => vm.host).find(id => id !== current.hostId)!;
		const gone = before.filter(vm => vm.host === host);
		const stoppedAt = Date.now();
		await agents.get(host)!.stop('SIGTERM');
		const members = await waitForGroup('web', vms => running(vms).length === 3 && vms.every(vm => vm.host !== host), `${host}'s members replaced`);
		figures.hostDownReplacementMs = Date.now() - stoppedAt;
		expect(slots(members)).toEqual([0, 1, 2]);

		agents.set(host, await cloud.startAgent(host, agentArgs));
		await waitFor(async () => (await client.list({timeoutMs: 3000})).replies.some(snapshot => snapshot.host.id === host), 30_000, `${host} answering again`);
		const whole = await waitForGroup('web', vms => vms.length === 3 && running(vms).length === 3 && vms.some(vm => vm.host === host) === false, 'the extras deleted');
		expect(whole.map(vm => vm.id).sort()).toEqual(members.map(vm => vm.id).sort());
		expect(gone.every(vm => !whole.some(member => member.id === vm.id))).toBe(true);
	}, 2 * BOOT_TIMEOUT_MS);

	it('scale down to 1, then delete removes the members', async () => {
		const scaled = await cloud.cli(['group', 'scale', 'web', '1']);
		expect(scaled.stdout).toMatch(/from 3 to 1/);
		const one = await waitForGroup('web', vms => vms.length === 1, 'scaled down to 1');
		expect(slots(one)).toEqual([0]);
		expect((await cloud.cli(['group', 'scale', 'web', '9'])).stderr).toMatch(/0 … 5 members, not 9/);

		// --wait returns once the members are gone: the next list has none.
		const deleted = await cloud.cli(['group', 'delete', 'web', '--wait']);
		expect(deleted.code, deleted.stderr).toBe(0);
		expect(deleted.stdout).toBe('deleted group web and its 1 member\n');
		expect(await membersOf('web')).toEqual([]);
		expect(await cloud.cliJson(['group', 'list'])).toEqual([]);
		// Not with another command.
		const misplaced = await cloud.cli(['list', '--wait']);
		expect([misplaced.code, misplaced.stderr]).toEqual([2, 'kloud-tui: --wait goes with group delete\n']);
	}, BOOT_TIMEOUT_MS);
});

describe('a hung controller', () => {
	it('a leader whose process hangs (SIGSTOP) loses the lead within seconds; back, it stands again and stays a follower', async () => {
		const old = leader()!;
		const stoppedAt = Date.now();
		old.process.kill('SIGSTOP');
		try {
			await waitFor(() => leaders().some(agent => agent !== old), 60_000, 'another controller after the hang').catch((error: unknown) => {
				throw new Error(`${(error as Error).message} (${old.hostId} was hung)\n${dump()}`);
			});
			figures.hungFailoverMs = Date.now() - stoppedAt;
		} finally {
			old.process.kill('SIGCONT');
		}

		await waitFor(() => !leaders().includes(old), 30_000, 'the old leader to step down');
		expect(leaders().map(agent => agent.hostId), dump()).toHaveLength(1);
	}, 120_000);
});

describe('console health check', () => {
	it('a member whose console stops printing the line is replaced', async () => {
		// Ticks for 25 s after boot, then falls silent.
		const userData = `#!/bin/sh\n( i=0; while [ $i -lt 12 ]; do echo "tick $i"; i=$((i + 1)); sleep 2; done; echo "silent now" ) &\n`;
		const path = `${cloud.dir}/tick.sh`;
		const {writeFile} = await import('node:fs/promises');
		await writeFile(path, userData);
		const created = await cloud.cli(['group', 'create', 'beat', '--image', 'demo', '--size', '1', '--health', 'console:^tick \\d+', '--health-grace', '15', '--user-data', path]);
		expect(created.code, created.stderr).toBe(0);
		const [first] = await waitForGroup('beat', vms => running(vms).length === 1, 'the member running');
		const silentAt = Date.now();
		const members = await waitForGroup('beat', vms => vms.length >= 1 && !vms.some(vm => vm.id === first!.id), `${first!.id} replaced after its ticks stopped`, BOOT_TIMEOUT_MS + 60_000);
		figures.consoleReplacementMs = Date.now() - silentAt;
		expect(parseMemberToken(members[0]!.clientToken)!.gen).toBeGreaterThan(0);
		await cloud.cli(['group', 'delete', 'beat']);
		await waitForGroup('beat', vms => vms.length === 0, 'the members deleted');
	}, 2 * BOOT_TIMEOUT_MS);
});
