/** Real agent processes for the benchmarks, each in its own state dir, all in one namespace. */
import {spawn, type ChildProcess} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';

export const AMQP_URL = process.env.KLOUD_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const AGENT_BIN = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));

export type BenchAgent = {
	readonly hostId: string;
	readonly process: ChildProcess;
	/** What it logged since it was ready (with `keepLogs` only; else empty). */
	logs(): string;
	stop(): Promise<void>;
};

export type AgentOptions = {
	readonly namespace: string;
	readonly hostId: string;
	readonly dir: string;
	readonly imagesDir: string;
	readonly extra?: readonly string[];
	/** Broker URL (or a cluster's URL list); default AMQP_URL. */
	readonly url?: string;
	/** Keep what the agent logs (pino JSON lines) for `logs()`. */
	readonly keepLogs?: boolean;
};

/** The node flags the agent's shebang asks for (`#!/usr/bin/env -S node --flag …`): run it as shipped. */
function shebangFlags(): string[] {
	const first = readFileSync(AGENT_BIN, 'utf8').split('\n', 1)[0] ?? '';
	return first.startsWith('#!') ? first.split(/\s+/).filter(part => part.startsWith('--')) : [];
}

export async function spawnAgent(options: AgentOptions): Promise<BenchAgent> {
	const child = spawn(
		process.execPath,
		[
			...shebangFlags(),
			AGENT_BIN,
			'--amqp',
			options.url ?? AMQP_URL,
			'--namespace',
			options.namespace,
			'--host-id',
			options.hostId,
			'--images',
			options.imagesDir,
			'--state-dir',
			join(options.dir, options.hostId),
			...(options.extra ?? []),
		],
		{stdio: ['ignore', 'pipe', 'inherit']},
	);
	const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
	let kept = '';
	await new Promise<void>((resolve, reject) => {
		let output = '';
		const onData = (chunk: Buffer) => {
			output += chunk.toString();
			if (output.includes('agent ready')) {
				// Keep draining the log pipe (a full pipe would block the agent), without keeping it.
				child.stdout!.off('data', onData);
				if (options.keepLogs) {
					kept = output;
					child.stdout!.on('data', (more: Buffer) => {
						kept += more.toString();
					});
				}

				child.stdout!.resume();
				resolve();
			}
		};

		child.stdout!.on('data', onData);
		child.once('exit', code => reject(new Error(`agent ${options.hostId} exited with ${code}: ${output}`)));
	});
	return {
		hostId: options.hostId,
		process: child,
		logs: () => kept,
		async stop() {
			if (child.exitCode === null && child.signalCode === null) {
				child.kill('SIGTERM');
			}

			await exited;
		},
	};
}

/** Resident set size of a process in MiB, from /proc. */
export async function rssMb(pid: number): Promise<number> {
	const {readFile} = await import('node:fs/promises');
	const status = await readFile(`/proc/${pid}/status`, 'utf8');
	const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
	return kb / 1024;
}
