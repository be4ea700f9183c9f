/** A benchmark cloud: a namespace, a blank base image, real agents, a client; torn down afterwards. */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {mkdir, mkdtemp, rm} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import amqp from 'amqplib';
import {KloudClient} from '../../source/broker/client.js';
import {AMQP_URL, spawnAgent, type BenchAgent} from './agents.js';

const run = promisify(execFile);

export type BenchCloud = {
	readonly namespace: string;
	readonly dir: string;
	readonly base: string;
	readonly client: KloudClient;
	readonly agents: BenchAgent[];
	addAgents(count: number, extra?: readonly string[]): Promise<BenchAgent[]>;
	/** Waits until a list round hears from every agent. */
	settle(): Promise<void>;
	close(): Promise<void>;
};

/** What every agent of a benchmark cloud runs with unless the cloud says otherwise: cheap paused VMs. */
export const PAUSED_AGENT_FLAGS: readonly string[] = ['--start-paused', '--max-vms', '128', '--memory', '64', '--cpu-overcommit', '128', '--network-default', 'none'];

export type BenchCloudOptions = {
	readonly agentFlags?: readonly string[];
	/** Broker URL, or the URLs of a cluster's nodes, comma-separated (default AMQP_URL). */
	readonly url?: string;
	/** The client reconnects after a drop (to the next URL of a cluster); default: fails fast. */
	readonly isReconnecting?: boolean;
};

export async function createBenchCloud(label: string, options: BenchCloudOptions = {}): Promise<BenchCloud> {
	const agentFlags = options.agentFlags ?? PAUSED_AGENT_FLAGS;
	const url = options.url ?? AMQP_URL;
	const namespace = `bench-${label}-${randomBytes(3).toString('hex')}`;
	const dir = await mkdtemp(`/tmp/kb-${label}-`);
	const imagesDir = join(dir, 'img');
	await mkdir(imagesDir);
	const base = join(imagesDir, 'blank.qcow2');
	await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
	const client = await KloudClient.connect({url, namespace, connectionName: `kloud-bench@${label}`, sender: 'kloud-bench', reconnect: options.isReconnecting ?? false});
	const agents: BenchAgent[] = [];
	const cloud: BenchCloud = {
		namespace,
		dir,
		base,
		client,
		agents,
		async addAgents(count, extra = []) {
			const added: BenchAgent[] = [];
			// A few at a time: 50 Node processes starting at once on 2 cores only queue up.
			for (let index = 0; index < count; index += 4) {
				const batch = await Promise.all(
					Array.from({length: Math.min(4, count - index)}, async (_, offset) =>
						spawnAgent({namespace, hostId: `bench-${String(agents.length + index + offset).padStart(2, '0')}`, dir, imagesDir, url, extra: [...agentFlags, ...extra]}),
					),
				);
				added.push(...batch);
			}

			agents.push(...added);
			return added;
		},
		async settle() {
			const deadline = Date.now() + 30_000;
			while (Date.now() < deadline) {
				const round = await client.list({timeoutMs: 3000});
				if (round.replies.length === agents.length && round.missing.length === 0) {
					return;
				}
			}

			throw new Error(`agents did not all answer within 30 s (${agents.length} expected)`);
		},
		async close() {
			await client.close().catch(() => {});
			await Promise.all(agents.map(async agent => agent.stop()));
			await killQemuUnder(dir);
			await deleteNamespace(namespace, url);
			await rm(dir, {recursive: true, force: true});
		},
	};
	return cloud;
}

async function connectAny(urls: string): Promise<amqp.ChannelModel> {
	let lastError: unknown;
	for (const url of urls.split(',')) {
		try {
			return await amqp.connect(url.trim());
		} catch (error) {
			lastError = error;
		}
	}

	throw lastError;
}

/** SIGKILLs every QEMU whose command line points into `dir`. */
export async function killQemuUnder(dir: string): Promise<void> {
	const {readdir, readFile} = await import('node:fs/promises');
	for (const entry of await readdir('/proc')) {
		if (/^\d+$/.test(entry)) {
			const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
			if (cmd.includes('qemu-system') && cmd.includes(`${dir}/`)) {
				try {
					process.kill(Number(entry), 'SIGKILL');
				} catch {}
			}
		}
	}
}

/** Deletes the namespace's queues and exchanges through the first broker of the list that answers. */
async function deleteNamespace(namespace: string, urls: string): Promise<void> {
	const connection = await connectAny(urls);
	try {
		const channel = await connection.createChannel();
		channel.on('error', () => {});
		await channel.deleteQueue(`${namespace}.start`).catch(() => {});
		await channel.deleteQueue(`${namespace}.dead`).catch(() => {});
		await channel.deleteQueue(`${namespace}.groups`).catch(() => {});
		await channel.deleteQueue(`${namespace}.controller`).catch(() => {});
		await channel.deleteExchange(`${namespace}.commands`).catch(() => {});
		await channel.deleteExchange(`${namespace}.events`).catch(() => {});
		await channel.deleteExchange(`${namespace}.dead`).catch(() => {});
		await channel.close().catch(() => {});
	} finally {
		await connection.close();
	}
}
