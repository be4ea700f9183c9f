/**
 * A group of 50 (paused VMs on a blank image, `--start-paused`: QEMU and QMP run, the guest CPU
 * waits) over three real agents; the controller's agent is killed -9 and started again (an agent
 * restart adopts its VMs): the new controller must not make a single extra member, neither while
 * the dead agent's host is silent nor after it answers again.
 */
import {afterAll, beforeAll, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import {parseMemberToken, type Vm} from '../../source/protocol/index.js';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';

const SIZE = 50;
const HOSTS = ['gs-a', 'gs-b', 'gs-c'];
// The kloud heartbeat at its default (5 s), so that the dead agent stays in its peers' rosters
// while it is restarted, as it would in production.
const agentArgs = ['--start-paused', '--max-vms', '20', '--memory', '16', '--heartbeat', '5'];
const figures: Record<string, number> = {};
let cloud: Cloud;
let client: KloudClient;
const agents = new Map<string, AgentHandle>();

async function members(): Promise<Vm[]> {
	const round = await client.list({timeoutMs: 5000});
	return round.replies.flatMap(snapshot => snapshot.vms).filter(vm => parseMemberToken(vm.clientToken)?.group === 'big');
}

function isLeader(agent: AgentHandle): boolean {
	const logs = agent.logs();
	return agent.process.exitCode === null && agent.process.signalCode === null && logs.lastIndexOf('"elected group controller"') > logs.lastIndexOf('"no longer the group controller"');
}

beforeAll(async () => {
	cloud = await createCloud('grps');
	for (const host of HOSTS) {
		agents.set(host, await cloud.startAgent(host, agentArgs));
	}

	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: 'kloud-test-groups-scale', sender: 'kloud-test-groups-scale', reconnect: true});
}, 120_000);

afterAll(async () => {
	await client?.close();
	await cloud?.cleanup();
	process.stdout.write(`groups-scale figures: ${JSON.stringify(figures)}\n`);
});

it(`a group of ${SIZE} reconciled after a controller failover: 0 extra members`, async () => {
	const created = await cloud.cli(['group', 'create', 'big', '--image', 'blank', '--size', String(SIZE), '--restart', 'no', '--host-grace', '60']);
	expect(created.code, created.stderr).toBe(0);
	const startedAt = Date.now();
	let before: Vm[] = [];
	await waitFor(
		async () => {
			before = await members();
			return before.length === SIZE && before.every(vm => vm.state === 'running');
		},
		300_000,
		`${SIZE} running members`,
	);
	figures.groupOf50UpMs = Date.now() - startedAt;
	expect(new Set(before.map(vm => parseMemberToken(vm.clientToken)!.slot)).size).toBe(SIZE);
	const perHost = HOSTS.map(host => before.filter(vm => vm.host === host).length);
	expect(Math.max(...perHost) - Math.min(...perHost)).toBeLessThanOrEqual(1);

	const old = [...agents.values()].find(agent => isLeader(agent))!;
	expect(old).toBeDefined();
	const killedAt = Date.now();
	await old.stop('SIGKILL');
	await waitFor(() => [...agents.values()].some(agent => agent !== old && isLeader(agent)), 60_000, 'a new controller');
	figures.failoverMs = Date.now() - killedAt;
	const successor = [...agents.values()].find(agent => agent !== old && isLeader(agent))!;
	const electedAt = successor.logs().lastIndexOf('"elected group controller"');
	// The new controller rounds while the dead agent's host is silent …
	await waitFor(() => (successor.logs().slice(electedAt).match(/"group round"/g) ?? []).length >= 2, 60_000, 'two rounds without the dead host');

	// … and after it is back with its VMs (adopted), until a round saw all of them.
	agents.set(old.hostId, await cloud.startAgent(old.hostId, agentArgs));
	await waitFor(() => new RegExp(`"vms":${SIZE},"hosts":3,"actions":0`).test(successor.logs().slice(electedAt)), 120_000, `a round that saw all ${SIZE} members on 3 hosts and did nothing`);
	const after = await members();
	// What the controllers did with members, to read when this fails.
	const actions = [...agents.values()].flatMap(agent => agent.logs().split('\n').filter(line => /group member|elected|no longer/.test(line)).map(line => `${agent.hostId}: ${line}`));
	const gone = before.filter(vm => !after.some(other => other.id === vm.id)).map(vm => JSON.stringify(vm));
	expect(after.map(vm => vm.id).sort(), `gone: ${gone.join('\n')}\n${actions.slice(-60).join('\n')}`).toEqual(before.map(vm => vm.id).sort());
	const starts = successor.logs().slice(electedAt).match(/"starting a group member"/g) ?? [];
	figures.extraMembersCreated = starts.length;
	expect(starts).toEqual([]);

	expect((await cloud.cli(['group', 'delete', 'big'])).code).toBe(0);
	await waitFor(async () => (await members()).length === 0, 120_000, 'the members deleted');
}, 600_000);
