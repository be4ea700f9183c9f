/**
 * Floors: what the broker and QEMU cost by themselves, measured in the same run as kloud.
 * - a fanout + Direct Reply-To round with plain amqplib responders;
 * - `qemu-img create` + QEMU spawn until QMP answers, done directly through the agent's own pieces.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {randomBytes, randomUUID} from 'node:crypto';
import {mkdir, rm, writeFile} from 'node:fs/promises';
import {createConnection} from 'node:net';
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

/** Starts a responder script (added to `children` at once, for the caller's clean-up) and returns its first line, once it is ready. */
async function spawnResponder(script: string, args: readonly string[], children: ChildProcess[]): Promise<string> {
	const child = spawn(process.execPath, [script, ...args], {stdio: ['ignore', 'pipe', 'inherit']});
	children.push(child);
	return new Promise<string>((resolve, reject) => {
		child.stdout!.once('data', (data: Buffer) => {
			child.stdout!.resume();
			resolve(data.toString().trim());
		});
		child.once('exit', code => reject(new Error(`${script} exited with ${code}`)));
	});
}

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
				Array.from({length: Math.min(4, responders - index)}, async () => spawnResponder(RESPONDER, [AMQP_URL, exchange, payloadFile], children)),
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

const ECHO_RESPONDER = fileURLToPath(new URL('echo-responder.js', import.meta.url));

export type EchoFloor = {
	/** Publishes `data` to the echo process; what comes back goes to every output listener. */
	send(data: string): void;
	onOutput(listener: (data: Buffer) => void): void;
	close(): Promise<void>;
};

/**
 * The console's broker floor: an echo process (see echo-responder.ts) reached the way a keystroke
 * reaches an agent (topic exchange, exclusive queue), answering the way a console frame reaches
 * its viewer (default exchange, the viewer's bounded exclusive queue).
 */
export async function openEchoFloor(): Promise<EchoFloor> {
	const exchange = `bench-echo-${randomBytes(3).toString('hex')}`;
	const connection = await amqp.connect(AMQP_URL, {noDelay: true});
	const children: ChildProcess[] = [];
	const close = async () => {
		for (const child of children) {
			child.kill('SIGTERM');
		}

		await connection.close().catch(() => {});
	};

	try {
		const channel = await connection.createConfirmChannel();
		await channel.assertExchange(exchange, 'topic', {autoDelete: true, durable: false});
		await spawnResponder(ECHO_RESPONDER, [AMQP_URL, exchange, 'host.echo'], children);
		const {queue} = await channel.assertQueue('', {exclusive: true, arguments: {'x-max-length-bytes': 1024 * 1024, 'x-overflow': 'drop-head'}});
		await channel.prefetch(256);
		const listeners: Array<(data: Buffer) => void> = [];
		await channel.consume(
			queue,
			message => {
				if (message) {
					channel.ack(message);
					for (const listener of listeners) {
						listener(message.content);
					}
				}
			},
			{noAck: false},
		);
		return {
			send(data) {
				channel.publish(exchange, 'host.echo', Buffer.from(data), {replyTo: queue}, () => {});
			},
			onOutput(listener) {
				listeners.push(listener);
			},
			close,
		};
	} catch (error) {
		await close();
		throw error;
	}
}

const TCP_ECHO_RESPONDER = fileURLToPath(new URL('tcp-echo-responder.js', import.meta.url));

/**
 * The machine's wake-up floor: a plain loopback TCP echo between this process and another Node
 * process (no broker, no kloud). The broker's two hops are four such legs plus the broker's work.
 */
export async function openTcpEchoFloor(): Promise<EchoFloor> {
	const children: ChildProcess[] = [];
	const port = Number(await spawnResponder(TCP_ECHO_RESPONDER, [], children));
	const socket = createConnection({port, host: '127.0.0.1', noDelay: true});
	await new Promise<void>((resolve, reject) => {
		socket.once('connect', resolve);
		socket.once('error', reject);
	});
	return {
		send(data) {
			socket.write(data);
		},
		onOutput(listener) {
			socket.on('data', listener);
		},
		async close() {
			socket.destroy();
			for (const child of children) {
				child.kill('SIGTERM');
			}
		},
	};
}
