/**
 * A real 3-node RabbitMQ cluster for a test file, through `scripts/cluster.sh` (beside the machine's
 * broker: own node names, ports, data dir, cookie). Each file names its own cluster and port range,
 * so files running in parallel never share nodes; `down()` in `afterAll` leaves nothing behind.
 */
import {execFile} from 'node:child_process';
import {readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';

const run = promisify(execFile);
const SCRIPT = join(fileURLToPath(new URL('../..', import.meta.url)), 'scripts/cluster.sh');

export type ClusterOptions = {
	/** Node name prefix, letters only: nodes are `<name>1@localhost` … */
	readonly name: string;
	/** AMQP port of node 1 (node i: port + i - 1; AMQPS with `tlsDir`: port + 10 + i - 1). */
	readonly port: number;
	/** A dir with ca.pem, server.pem, server-key.pem: the nodes also serve AMQPS and want client certificates. */
	readonly tlsDir?: string;
	/** How many nodes (default 3; 1 for a single TLS broker). */
	readonly nodeCount?: number;
};

export type Cluster = {
	/** `amqp://guest:guest@127.0.0.1:<port>` of each node, node 1 first. */
	readonly urls: readonly string[];
	/** `amqps://127.0.0.1:<tls port>` of each node (with `tlsDir`). */
	readonly tlsUrls: readonly string[];
	/** The node names, node 1 first (`kcf1@localhost` …). */
	readonly nodes: readonly string[];
	/** Seconds `up` took (start and join). */
	readonly upSeconds: number;
	/** rabbitmqctl against node `index` (0-based). */
	ctl(index: number, args: readonly string[]): Promise<string>;
	/** `rabbitmqctl stop_app` on node `index`: it closes its clients' connections and leaves the cluster's running set. */
	stopApp(index: number): Promise<void>;
	/** `start_app` on node `index` and wait until it runs again. */
	startApp(index: number): Promise<void>;
	/**
	 * SIGSTOP on node `index`'s Erlang VM: a hung node (its TCP ports still accept connections, nothing
	 * answers), which its peers and clients notice only through their own timeouts. `thaw` resumes it.
	 */
	freeze(index: number): Promise<void>;
	thaw(index: number): Promise<void>;
	/**
	 * Cuts node `index` off from the other nodes (a network partition of its Erlang distribution):
	 * it takes another cookie for each of them and drops its links, so every handshake between them
	 * fails until `heal`. Its clients' AMQP ports and rabbitmqctl are untouched, and so is every
	 * other process's network: nothing outside the cluster is blocked.
	 */
	partition(index: number): Promise<void>;
	heal(index: number): Promise<void>;
	/** Whether RabbitMQ runs on node `index` (false once stop_app ran, or while pause_minority pauses it). */
	isRunning(index: number): Promise<boolean>;
	/** Which node (0-based) is the leader of quorum queue `queue`, as node `askIndex` sees it. */
	leaderOf(queue: string, askIndex?: number): Promise<number>;
	/** The index of the node behind a `host:port` address (what agents report as `broker`), AMQP or AMQPS; -1 for none. */
	indexOfAddress(address: string): number;
	down(): Promise<void>;
};

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
	const env = {
		...process.env,
		KLOUD_CLUSTER_DIR: `/tmp/kloud-cluster-${options.name}`,
		KLOUD_CLUSTER_NAME: options.name,
		KLOUD_CLUSTER_PORT: String(options.port),
		KLOUD_CLUSTER_NODES: String(options.nodeCount ?? 3),
		...(options.tlsDir === undefined ? {} : {KLOUD_CLUSTER_TLS: options.tlsDir}),
	};
	const script = async (args: readonly string[], timeout = 180_000) => {
		try {
			return (await run('bash', [SCRIPT, ...args], {env, timeout})).stdout;
		} catch (error) {
			// What the script said (which node did not start, its log's tail) is the useful part.
			const {stderr, killed} = error as {stderr?: string; killed?: boolean};
			throw new Error(`scripts/cluster.sh ${args.join(' ')} failed${killed ? ` (killed after ${timeout} ms)` : ''}: ${stderr?.trim().split('\n').slice(-12).join('\n') ?? ''}`, {cause: error});
		}
	};
	// Whatever a killed run left behind under this name goes first: a fresh cluster every time.
	await script(['down']);
	const startedAt = Date.now();
	try {
		await script(['up']);
	} catch (error) {
		await script(['down']).catch(() => {});
		throw error;
	}

	const upSeconds = (Date.now() - startedAt) / 1000;
	const indexes = Array.from({length: options.nodeCount ?? 3}, (_, index) => index);
	const nodes = indexes.map(index => `${options.name}${index + 1}@localhost`);
	const ports = indexes.map(index => options.port + index);
	const ctl = async (index: number, args: readonly string[]) => script(['ctl', String(index + 1), '-q', ...args], 120_000);
	const beamPid = async (index: number) => Number((await readFile(`${env.KLOUD_CLUSTER_DIR}/n${index + 1}/pid`, 'utf8')).trim());
	return {
		urls: ports.map(port => `amqp://guest:guest@127.0.0.1:${port}`),
		tlsUrls: indexes.map(index => `amqps://127.0.0.1:${options.port + 10 + index}`),
		nodes,
		upSeconds,
		ctl,
		async stopApp(index) {
			await ctl(index, ['stop_app']);
		},
		async startApp(index) {
			await ctl(index, ['start_app']);
			await ctl(index, ['await_startup']);
		},
		async freeze(index) {
			process.kill(await beamPid(index), 'SIGSTOP');
		},
		async thaw(index) {
			process.kill(await beamPid(index), 'SIGCONT');
		},
		async partition(index) {
			const others = nodes.filter((_, other) => other !== index).map(node => `'${node}'`).join(',');
			await ctl(index, ['eval', `[begin erlang:set_cookie(N, kloud_partition), erlang:disconnect_node(N) end || N <- [${others}]], ok.`]);
		},
		async heal(index) {
			const others = nodes.filter((_, other) => other !== index).map(node => `'${node}'`).join(',');
			await ctl(index, ['eval', `C = erlang:get_cookie(), [erlang:set_cookie(N, C) || N <- [${others}]], ok.`]);
		},
		async isRunning(index) {
			return (await ctl(index, ['eval', 'rabbit:is_running().'])).trim() === 'true';
		},
		async leaderOf(queue, askIndex = 0) {
			const out = await ctl(askIndex, ['list_queues', '--no-table-headers', 'name', 'leader']);
			const line = out.split('\n').map(row => row.trim().split(/\s+/)).find(([name]) => name === queue);
			const index = nodes.indexOf(line?.[1] ?? '');
			if (index < 0) {
				throw new Error(`no leader for queue ${queue} in:\n${out}`);
			}

			return index;
		},
		indexOfAddress(address) {
			// The node behind an AMQP port or, with TLS, an AMQPS port (port + 10).
			return ports.findIndex(port => address === `127.0.0.1:${port}` || address === `127.0.0.1:${port + 10}`);
		},
		async down() {
			await script(['down'], 60_000);
		},
	};
}
