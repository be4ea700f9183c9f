/**
 * Floors: what the broker and QEMU cost by themselves, measured in the same run as kloud.
 * - a fanout + Direct Reply-To round with plain amqplib responders;
 * - `qemu-img create` + QEMU spawn until QMP answers, done directly through the agent's own pieces.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {randomBytes, randomUUID} from 'node:crypto';
import {mkdir, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import amqp from 'amqplib';
import {qemuArgs} from '../../agent/qemu-args.js';
import {waitForQmp} from '../../agent/qmp.js';
import {createRuntime, type Runtime} from '../../agent/runtime.js';
import {vmPaths} from '../../agent/vm-paths.js';
import {AMQP_URL} from './agents.js';

const RESPONDER = fileURLToPath(new URL('responder.js', import.meta.url));

export type ListFloor = {
	/** One scatter-gather round to every responder: milliseconds until the last reply. */
	round(): Promise<number>;
	close(): Promise<void>;
};

/**
 * `responders` plain amqplib responder processes that answer every round with `payload`. Rounds are
 * taken one at a time by the caller, so they can alternate with kloud's own: both then see the
 * same machine, not two different stretches of a noisy one.
 */
export async function openListFloor(responders: number, payload: Buffer): Promise<ListFloor> {
	const exchange = `bench-floor-${randomBytes(3).toString('hex')}`;
	const payloadFile = join(tmpdir(), `${exchange}.json`);
	await writeFile(payloadFile, payload);
	const connection = await amqp.connect(AMQP_URL);
	const children: ChildProcess[] = [];
	const close = async () => {
		for (const child of children) {
			child.kill('SIGTERM');
		}

		await connection.close().catch(() => {});
		await rm(payloadFile, {force: true});
	};

	try {
		const channel = await connection.createChannel();
		await channel.assertExchange(exchange, 'fanout', {autoDelete: true, durable: false});
		for (let index = 0; index < responders; index += 4) {
			await Promise.all(
				Array.from({length: Math.min(4, responders - index)}, async () => {
					const child = spawn(process.execPath, [RESPONDER, AMQP_URL, exchange, payloadFile], {stdio: ['ignore', 'pipe', 'inherit']});
					children.push(child);
					await new Promise<void>((resolve, reject) => {
						child.stdout!.once('data', () => {
							child.stdout!.resume();
							resolve();
						});
						child.once('exit', code => reject(new Error(`floor responder exited with ${code}`)));
					});
				}),
			);
		}

		let pending: {id: string; left: number; done: () => void} | undefined;
		await channel.consume(
			'amq.rabbitmq.reply-to',
			message => {
				if (message && pending && message.properties.correlationId === pending.id && --pending.left === 0) {
					pending.done();
				}
			},
			{noAck: true},
		);
		return {
			async round() {
				const started = performance.now();
				await new Promise<void>(resolve => {
					pending = {id: randomUUID(), left: responders, done: resolve};
					channel.publish(exchange, '', Buffer.from('{"type":"vm.list"}'), {replyTo: 'amq.rabbitmq.reply-to', correlationId: pending.id});
				});
				return performance.now() - started;
			},
			close,
		};
	} catch (error) {
		await close();
		throw error;
	}
}

export function randomVmId(): string {
	return `vm-${Array.from(randomBytes(8), byte => String.fromCodePoint(97 + (byte % 26))).join('')}`;
}

export type DirectVm = {readonly pid: number; readonly exited: Promise<unknown>};

/** Overlay + spawn + QMP, exactly the agent's steps without the agent; returns the time and the process. */
export async function directStart(runtime: Runtime, root: string, base: string, options: {readonly isPaused: boolean}): Promise<{ms: number; vm: DirectVm; id: string}> {
	const id = randomVmId();
	const paths = vmPaths(root, id);
	await mkdir(paths.dir, {recursive: true});
	const started = performance.now();
	await runtime.createOverlay(base, paths.disk);
	const {vm} = await directBoot(runtime, root, id, options);
	return {ms: performance.now() - started, vm, id};
}

/** Spawn + QMP on the overlay a `directStart` left (a stopped VM booted again, without the agent). */
export async function directBoot(runtime: Runtime, root: string, id: string, options: {readonly isPaused: boolean}): Promise<{ms: number; vm: DirectVm}> {
	const paths = vmPaths(root, id);
	const started = performance.now();
	const child = runtime.spawnQemu(qemuArgs({id, paths, memoryMb: 64, cpus: 1, accel: 'tcg', isPaused: options.isPaused}), {logPath: paths.qemuLog});
	await waitForQmp(paths.qmp, {timeoutMs: 60_000, isAlive: () => runtime.isAlive(child.pid)});
	return {ms: performance.now() - started, vm: child};
}

/** Runs `count` direct starts with `parallelism` at a time; returns the total wall time. */
export async function directStarts(root: string, base: string, count: number, parallelism: number): Promise<{totalMs: number; vms: DirectVm[]}> {
	const runtime = createRuntime();
	const vms: DirectVm[] = [];
	let next = 0;
	const started = performance.now();
	await Promise.all(
		Array.from({length: parallelism}, async () => {
			while (next < count) {
				next++;
				const {vm} = await directStart(runtime, join(root, 'direct'), base, {isPaused: true});
				vms.push(vm);
			}
		}),
	);
	return {totalMs: performance.now() - started, vms};
}

export async function killDirect(vms: readonly DirectVm[]): Promise<void> {
	const runtime = createRuntime();
	for (const vm of vms) {
		runtime.signal(vm.pid, 'SIGKILL');
	}

	await Promise.all(vms.map(async vm => vm.exited));
}
