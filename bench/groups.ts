/**
 * Groups (issue 14), `BENCH_ONLY=groups`: three agents with paused VMs on a blank image, each
 * standing for controller, and
 * - replacement: a member's QEMU SIGKILLed (restart policy `no`) → its successor running (QMP
 *   answering), against its floor, a start of one VM through the same agents;
 * - controller failover: the leader's agent SIGKILLed → another agent elected (its log);
 * - a group of 50 reconciled after that failover: the dead agent started again (it adopts its
 *   members), the new controller's first round that saw all 50 on 3 hosts and did nothing; extra
 *   members it created: counted from its log (the goal is 0).
 */
import {dirname} from 'node:path';
import {GroupStoreClient} from '../source/broker/group-store.js';
import {groupCreateCommand, groupDeleteCommand} from '../source/group-commands.js';
import {parseMemberToken, type Vm} from '../source/protocol/index.js';
import {AMQP_URL, spawnAgent, type BenchAgent} from './lib/agents.js';
import {createBenchCloud, type BenchCloud} from './lib/cloud.js';
import {markdownTable, median, ms, ratioRow, type Row} from './lib/stats.js';

type Options = {readonly replacements: number; readonly bigGroup: number; readonly log: (line: string) => void};

// The kloud heartbeat at its default (5 s), as in production: a dead agent stays in its peers' rosters meanwhile.
const AGENT_FLAGS = ['--start-paused', '--max-vms', '20', '--memory', '64', '--cpu-overcommit', '128', '--network-default', 'none', '--heartbeat', '5', '--log-level', 'debug'];

async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!(await predicate())) {
		if (Date.now() > deadline) {
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		}

		await new Promise(resolve => setTimeout(resolve, 20));
	}
}

/** When the agent last logged `message` (epoch ms), or 0. */
function lastLogged(agent: BenchAgent, message: string): number {
	const line = agent.logs().split('\n').filter(entry => entry.includes(`"msg":"${message}"`)).at(-1);
	return line ? Number(/"time":(\d+)/.exec(line)?.[1] ?? 0) : 0;
}

function isLeader(agent: BenchAgent): boolean {
	return agent.process.exitCode === null && agent.process.signalCode === null && lastLogged(agent, 'elected group controller') > lastLogged(agent, 'no longer the group controller');
}

async function membersOf(cloud: BenchCloud, group: string): Promise<Vm[]> {
	const round = await cloud.client.list({timeoutMs: 5000});
	return round.replies.flatMap(snapshot => snapshot.vms).filter(vm => parseMemberToken(vm.clientToken)?.group === group);
}

const draft = (name: string, size: number) => ({name, image: 'blank', size, min: 0, max: size, restart: 'no' as const, health: {kind: 'none' as const}, healthGraceSeconds: 90, hostGraceSeconds: 60});

export async function measureGroups(options: Options): Promise<string> {
	const {log} = options;
	const cloud = await createBenchCloud('groups', {agentFlags: []});
	const spawn = async (hostId: string) => spawnAgent({namespace: cloud.namespace, hostId, dir: cloud.dir, imagesDir: dirname(cloud.base), extra: AGENT_FLAGS, keepLogs: true});
	const agents = new Map<string, BenchAgent>();
	const store = await GroupStoreClient.open({url: AMQP_URL, topo: cloud.client.topo, connectionName: 'kloud-bench-groups', timeoutMs: 10_000});
	const common = {json: true, timeoutMs: 10_000};
	try {
		for (const host of ['bench-g0', 'bench-g1', 'bench-g2']) {
			agents.set(host, await spawn(host));
		}

		cloud.agents.push(...agents.values());
		await cloud.settle();
		await waitUntil(() => [...agents.values()].some(agent => isLeader(agent)), 30_000, 'a controller');

		// The floor: one start through the same agents (what a replacement ends with).
		const floor: number[] = [];
		for (let index = 0; index < options.replacements; index++) {
			const started = performance.now();
			const vm = await cloud.client.start({image: 'blank', host: `bench-g${index % 3}`}, {timeoutMs: 30_000});
			floor.push(performance.now() - started);
			await cloud.client.delete(vm.id, {host: vm.host, timeoutMs: 15_000});
		}

		log(`replacement: a group of 3, ${options.replacements} members killed one after the other`);
		await groupCreateCommand(store, draft('rep', 3), common);
		await waitUntil(async () => (await membersOf(cloud, 'rep')).filter(vm => vm.state === 'running').length === 3, 60_000, '3 running members');
		const replacement: number[] = [];
		for (let index = 0; index < options.replacements; index++) {
			const members = await membersOf(cloud, 'rep');
			const victim = members.find(vm => vm.state === 'running' && vm.pid !== null)!;
			const slot = parseMemberToken(victim.clientToken)!.slot;
			const killedAt = performance.now();
			process.kill(victim.pid!, 'SIGKILL');
			await waitUntil(
				async () => (await membersOf(cloud, 'rep')).some(vm => vm.id !== victim.id && vm.state === 'running' && parseMemberToken(vm.clientToken)!.slot === slot),
				60_000,
				`${victim.id} replaced`,
			);
			replacement.push(performance.now() - killedAt);
			log(`replacement ${index + 1}: ${ms(replacement.at(-1)!)}`);
			await waitUntil(async () => (await membersOf(cloud, 'rep')).length === 3, 30_000, 'the old member deleted');
		}

		await groupDeleteCommand(store, cloud.client, 'rep', {...common, wait: false});
		await waitUntil(async () => (await membersOf(cloud, 'rep')).length === 0, 60_000, 'the rep members deleted');

		log(`a group of ${options.bigGroup} paused members, then the controller's agent SIGKILLed`);
		await groupCreateCommand(store, draft('big', options.bigGroup), common);
		const upStarted = performance.now();
		let before: Vm[] = [];
		await waitUntil(
			async () => {
				before = await membersOf(cloud, 'big');
				return before.length === options.bigGroup && before.every(vm => vm.state === 'running');
			},
			600_000,
			`${options.bigGroup} running members`,
		);
		const upMs = performance.now() - upStarted;
		const old = [...agents.values()].find(agent => isLeader(agent))!;
		const killedAt = Date.now();
		old.process.kill('SIGKILL');
		await waitUntil(() => [...agents.values()].some(agent => agent !== old && isLeader(agent)), 60_000, 'a new controller');
		const successor = [...agents.values()].find(agent => agent !== old && isLeader(agent))!;
		const failoverMs = lastLogged(successor, 'elected group controller') - killedAt;
		log(`failover: ${ms(failoverMs)} (${old.hostId} → ${successor.hostId})`);
		const electedAt = successor.logs().lastIndexOf('"elected group controller"');
		const restartedAt = Date.now();
		agents.set(old.hostId, await spawn(old.hostId));
		cloud.agents.push(agents.get(old.hostId)!);
		const settled = new RegExp(`"time":(\\d+)[^\\n]*"groups":1,"vms":${options.bigGroup},"hosts":3,"actions":0`);
		await waitUntil(() => settled.test(successor.logs().slice(electedAt)), 180_000, `a round that saw all ${options.bigGroup} members and did nothing`);
		const reconciledMs = Number(settled.exec(successor.logs().slice(electedAt))![1]) - restartedAt;
		const extras = (successor.logs().slice(electedAt).match(/"starting a group member"/g) ?? []).length;
		const after = await membersOf(cloud, 'big');
		const same = after.length === before.length && after.every(vm => before.some(old => old.id === vm.id));
		log(`reconciled ${ms(reconciledMs)} after the restart; extra members created: ${extras}; same members: ${same}`);
		await groupDeleteCommand(store, cloud.client, 'big', {...common, wait: false});
		await waitUntil(async () => (await membersOf(cloud, 'big')).length === 0, 120_000, 'the big members deleted');

		const rows: Row[] = [
			ratioRow('group member SIGKILLed → its replacement running', floor, replacement, 3, 'p50 ≤ 3× a start'),
			{measure: 'controller failover (leader agent SIGKILLed → another elected)', floor: '–', median: ms(failoverMs), p90: '–', ratio: '–', goal: '≤ 6 s', verdict: failoverMs <= 6000 ? 'met' : 'missed'},
			{
				measure: `group of ${options.bigGroup} (paused) after the failover: extra members created`,
				floor: '–',
				median: String(extras),
				p90: '–',
				ratio: '–',
				goal: '0, same members',
				verdict: extras === 0 && same ? 'met' : 'missed',
			},
		];
		return `## Groups (issue 14)

Three agents (paused VMs, blank image, \`--heartbeat 5\`), every one standing for controller. The
floor of a replacement is one start of a VM through the same agents (request → QMP answering),
medians of ${options.replacements}. A replacement is the member's \`vm.crashed\` event waking the
controller, a list round, and the start of its successor (the old member deleted after).

${markdownTable(rows)}

A group of ${options.bigGroup} came up in ${ms(upMs)}; after the failover the dead agent was started
again (it adopted its members) and the new controller's first round that saw all ${options.bigGroup}
on 3 hosts and did nothing came ${ms(reconciledMs)} after that restart; the members listed after
were ${same ? 'the same VMs as before' : 'NOT the same VMs as before'}.
`;
	} finally {
		await store.close().catch(() => {});
		await cloud.close();
	}
}
