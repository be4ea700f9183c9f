/**
 * The 3-node RabbitMQ cluster (scripts/cluster.sh, beside the machine's broker) against the single
 * broker, in the same run: list rounds, start latency and concurrent starts through each, as ratios
 * cluster / single; and failover: the node the client and the start queue's leader are on stops →
 * the first start answered through another node.
 */
import {execFile} from 'node:child_process';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {AMQP_URL} from './lib/agents.js';
import {createBenchCloud, type BenchCloud} from './lib/cloud.js';
import {median, ms, p90} from './lib/stats.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/cluster.sh', import.meta.url));
const CLUSTER_ENV = {KLOUD_CLUSTER_DIR: '/tmp/kloud-cluster-bench', KLOUD_CLUSTER_NAME: 'kcb', KLOUD_CLUSTER_PORT: '5791'};
const CLUSTER_URLS = [5791, 5792, 5793].map(port => `amqp://guest:guest@127.0.0.1:${port}`);
const AGENTS = 4;

export type ClusterOptions = {
	readonly quick: boolean;
	readonly log: (line: string) => void;
};

type Figures = {readonly list: number[]; readonly start: number[]; readonly burstMs: number; readonly burstExact: boolean};

async function cluster(args: readonly string[]): Promise<void> {
	await run('bash', [SCRIPT, ...args], {env: {...process.env, ...CLUSTER_ENV}, timeout: 180_000});
}

/** List rounds, sequential starts and a burst of concurrent starts through one cloud of AGENTS agents. */
async function measure(cloud: BenchCloud, options: {readonly rounds: number; readonly starts: number; readonly burst: number}): Promise<Figures> {
	await cloud.addAgents(AGENTS);
	await cloud.settle();
	// A few VMs on each agent, so a list reply carries some.
	for (const agent of cloud.agents) {
		await Promise.all(Array.from({length: 3}, async () => cloud.client.start({image: 'blank', host: agent.hostId}, {timeoutMs: 60_000})));
	}

	const list: number[] = [];
	for (let round = 0; round < options.rounds; round++) {
		const started = performance.now();
		await cloud.client.list({timeoutMs: 2000});
		list.push(performance.now() - started);
	}

	const start: number[] = [];
	for (let index = 0; index < options.starts; index++) {
		const started = performance.now();
		const vm = await cloud.client.start({image: 'blank'}, {timeoutMs: 60_000});
		start.push(performance.now() - started);
		await cloud.client.stop(vm.id, {kill: true, host: vm.host, timeoutMs: 30_000});
	}

	const burstStarted = performance.now();
	const vms = await Promise.all(Array.from({length: options.burst}, async () => cloud.client.start({image: 'blank'}, {timeoutMs: 300_000})));
	const burstMs = performance.now() - burstStarted;
	return {list, start, burstMs, burstExact: new Set(vms.map(vm => vm.id)).size === options.burst};
}

/** Which node (1-based) leads quorum queue `queue`, as node `ask` sees it. */
async function leaderOf(queue: string, ask: number): Promise<number> {
	const {stdout} = await run('bash', [SCRIPT, 'ctl', String(ask), '-q', 'list_queues', '--no-table-headers', 'name', 'leader'], {env: {...process.env, ...CLUSTER_ENV}});
	const leader = stdout.split('\n').map(line => line.trim().split(/\s+/)).find(([name]) => name === queue)?.[1] ?? '';
	return Number(/^kcb(\d)@/.exec(leader)?.[1] ?? Number.NaN);
}

/**
 * The node the client is on stops (the log says whether it also led the start queue): the time from
 * the client's connection dropping to the first start answered through another node.
 */
async function measureFailover(cloud: BenchCloud, samples: number, log: (line: string) => void): Promise<number[]> {
	const times: number[] = [];
	for (let sample = 0; sample < samples; sample++) {
		const node = cloud.client.connection.broker;
		const index = CLUSTER_URLS.findIndex(url => url.endsWith(node ?? '-'));
		if (index < 0) {
			throw new Error(`the bench client is on ${node ?? 'no node'}`);
		}

		const leader = await leaderOf(`${cloud.namespace}.start`, index + 1);
		const dropped = new Promise<number>(resolve => {
			const onState = (state: {status: string}) => {
				if (state.status !== 'connected') {
					cloud.client.connection.off('state', onState);
					resolve(performance.now());
				}
			};

			cloud.client.connection.on('state', onState);
		});
		await cluster(['ctl', String(index + 1), '-q', 'stop_app']);
		const droppedAt = await dropped;
		await cloud.client.start({image: 'blank'}, {timeoutMs: 60_000});
		times.push(performance.now() - droppedAt);
		log(`failover ${sample + 1}: node ${index + 1} stopped (start queue leader: node ${leader}), first start after ${ms(times.at(-1)!)}`);
		await cluster(['ctl', String(index + 1), '-q', 'start_app']);
		await cluster(['ctl', String(index + 1), '-q', 'await_startup']);
	}

	return times;
}

function row(measure: string, single: readonly number[], clustered: readonly number[]): string {
	return `| ${measure} | ${ms(median(single))} | ${ms(median(clustered))} | ${ms(p90(clustered))} | ${(median(clustered) / median(single)).toFixed(2)}× |`;
}

/** The cluster section of BENCHMARKS.md. */
export async function measureCluster(options: ClusterOptions): Promise<string> {
	const sizes = options.quick ? {rounds: 30, starts: 5, burst: 20} : {rounds: 100, starts: 15, burst: 100};
	const {log} = options;
	log('cluster: scripts/cluster.sh up (3 nodes beside the machine\'s broker)');
	const upStarted = performance.now();
	await cluster(['down']);
	await cluster(['up']);
	const upSeconds = (performance.now() - upStarted) / 1000;
	try {
		log(`cluster up in ${upSeconds.toFixed(1)} s; the single broker first`);
		const singleCloud = await createBenchCloud('single');
		let single: Figures;
		try {
			single = await measure(singleCloud, sizes);
		} finally {
			await singleCloud.close();
		}

		log('the same through the cluster');
		const clusterCloud = await createBenchCloud('cluster', {url: CLUSTER_URLS.join(','), isReconnecting: true});
		let clustered: Figures;
		let failover: number[];
		try {
			clustered = await measure(clusterCloud, sizes);
			failover = await measureFailover(clusterCloud, options.quick ? 1 : 3, log);
		} finally {
			await clusterCloud.close();
		}

		return `## A 3-node RabbitMQ cluster against the single broker

${AGENTS} agents with paused VMs; the same measures through the machine's broker (${AMQP_URL.replace(/\/\/.*@/, '//')}) and
through a 3-node cluster on the same machine (scripts/cluster.sh, up in ${upSeconds.toFixed(0)} s), in this run.
The client is on node 1; agents spread over the three nodes (their list is shuffled). The machine's
broker also serves whatever else runs on this shared machine and is measured first: a ratio below 1×
says the cluster costs nothing measurable here, not that it is faster.

| measure | single broker median | cluster median | cluster p90 | ratio cluster/single |
| --- | --- | --- | --- | --- |
${row(`list round, ${AGENTS} agents (${sizes.rounds} rounds)`, single.list, clustered.list)}
${row(`start → running (${sizes.starts} starts through the start queue)`, single.start, clustered.start)}
${row(`${sizes.burst} concurrent starts (total)`, [single.burstMs], [clustered.burstMs])}

All ${sizes.burst} burst starts answered with distinct VMs: single ${single.burstExact ? 'yes' : 'NO'}, cluster ${clustered.burstExact ? 'yes' : 'NO'}.
Failover (the client's node stopped with \`rabbitmqctl stop_app\` → the first start answered through
another node, the client's reconnect included): ${failover.map(time => ms(time)).join(', ')}.
`;
	} finally {
		await cluster(['down']);
	}
}
