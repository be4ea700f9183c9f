/**
 * The interactive console against its floor (`BENCH_ONLY=console npm run bench`): keystroke → echo
 * round trips and guest output throughput through the broker and the agent, against a twin guest
 * (same demo image, same QEMU argv) whose serial socket chardev this process reads directly. Both
 * guests boot at once and are measured one after the other, in the same run.
 */
import {execFile} from 'node:child_process';
import {symlink} from 'node:fs/promises';
import {createConnection, type Socket} from 'node:net';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {buildDemoImage} from '../agent/image/build-runner.js';
import {qemuArgs, QEMU_BINARY} from '../agent/qemu-args.js';
import {vmPaths} from '../agent/vm-paths.js';
import {ConsoleStream} from '../source/broker/console-stream.js';
import {createBenchCloud} from './lib/cloud.js';
import {markdownTable, median, ms, p90, ratioRow, type Row} from './lib/stats.js';

const run = promisify(execFile);

/** Something that takes guest input and hands back guest output: the console session, or the bare socket. */
type Line = {send(data: string): void; onOutput(listener: (data: Buffer) => void): void};

const PROMPT = /# (?:\u001B\[6n)?$/;

async function waitForText(line: {text(): string}, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!pattern.test(line.text())) {
		if (Date.now() > deadline) {
			throw new Error(`timed out waiting for ${what}`);
		}

		await new Promise(resolve => setTimeout(resolve, 20));
	}
}

/** Keeps what a line says, for waiting on it. */
function recorder(line: Line): {text(): string; clear(): void; waitForOutput(): Promise<void>} {
	let text = '';
	let waiter: (() => void) | undefined;
	line.onOutput(data => {
		text = (text + data.toString('latin1')).slice(-4096);
		const wake = waiter;
		waiter = undefined;
		wake?.();
	});
	return {
		text: () => text,
		clear() {
			text = '';
		},
		async waitForOutput() {
			await new Promise<void>(resolve => {
				waiter = resolve;
			});
		},
	};
}

/** Round trips of one typed character to its echo; the line is killed (ctrl-U) every 40 characters. */
async function roundTrips(line: Line, samples: number): Promise<number[]> {
	const said = recorder(line);
	const times: number[] = [];
	for (let index = 0; index < samples + 5; index++) {
		if (index % 40 === 39) {
			line.send('\u0015');
			await new Promise(resolve => setTimeout(resolve, 150));
		}

		const echoed = said.waitForOutput();
		const started = performance.now();
		line.send('a');
		await echoed;
		// The first few warm the path up.
		if (index >= 5) {
			times.push(performance.now() - started);
		}

		await new Promise(resolve => setTimeout(resolve, 5));
	}

	line.send('\u0015');
	return times;
}

/** Guest output bytes per second reaching the reader: `head -c BYTES` of `yes` to the console. */
async function throughput(line: Line, bytes: number): Promise<number> {
	const said = recorder(line);
	let received = 0;
	let startedAt = 0;
	line.onOutput(data => {
		if (data.includes('y\r\n') && startedAt === 0) {
			startedAt = performance.now();
		}

		if (startedAt > 0) {
			received += data.length;
		}
	});
	line.send(`yes | head -c ${bytes}; echo yes-$((2*3))-done\n`);
	await waitForText(said, /yes-6-done/, 600_000, 'the end of the output');
	return received / ((performance.now() - startedAt) / 1000);
}

export async function measureConsole(options: {readonly samples: number; readonly bytes: number; readonly log: (line: string) => void}): Promise<string> {
	const {log} = options;
	const image = await buildDemoImage({outDir: process.env.KLOUD_TEST_IMAGE_CACHE ?? '/tmp/kloud-test-cache/images'});
	const cloud = await createBenchCloud('console', {agentFlags: ['--max-vms', '4', '--memory', '128', '--network-default', 'none']});
	let twin: Socket | undefined;
	try {
		await symlink(image.path, join(cloud.dir, 'img', 'demo.qcow2'));
		await cloud.addAgents(1);
		await cloud.settle();
		// The twin: the same argv the agent would use, but its serial socket held by this process.
		const paths = vmPaths(join(cloud.dir, 'twin'), 'vm-twinfast');
		await run('mkdir', ['-p', paths.dir]);
		await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image.path, '-F', 'qcow2', paths.disk]);
		const twinProcess = execFile(QEMU_BINARY, qemuArgs({id: 'vm-twinfast', paths, memoryMb: 128, cpus: 1, accel: 'tcg'}));
		twinProcess.on('error', () => {});
		const vm = await cloud.client.start({image: 'demo'}, {timeoutMs: 60_000});
		log(`booting ${vm.id} (through the agent) and its twin (direct)`);

		for (let attempt = 0; !twin; attempt++) {
			twin = await new Promise<Socket | undefined>(resolve => {
				const socket = createConnection({path: paths.consoleSocket});
				socket.once('connect', () => resolve(socket));
				socket.once('error', () => resolve(undefined));
			});
			if (!twin) {
				if (attempt > 600) {
					throw new Error('the twin guest\'s console socket never opened');
				}

				await new Promise(resolve => setTimeout(resolve, 50));
			}
		}

		const socket = twin;
		const direct: Line = {send: data => socket.write(data), onOutput: listener => socket.on('data', listener)};
		const listeners: Array<(data: Buffer) => void> = [];
		const stream = await ConsoleStream.open(cloud.client, vm.id, {
			write: true,
			tailBytes: 65_536,
			timeoutMs: 10_000,
			onEvent(event) {
				if (event.type === 'output') {
					for (const listener of listeners) {
						listener(event.data);
					}
				}
			},
		});
		const broker: Line = {send: data => stream.input(Buffer.from(data)), onOutput: listener => listeners.push(listener)};
		const directSaid = recorder(direct);
		const brokerSaid = recorder(broker);
		await waitForText(directSaid, /KLOUD-READY/, 300_000, 'the twin to boot');
		await waitForText(brokerSaid, /KLOUD-READY[^]*# /, 300_000, `${vm.id} to boot`);
		for (const [line, said] of [[direct, directSaid], [broker, brokerSaid]] as const) {
			line.send('\n');
			await waitForText(said, PROMPT, 30_000, 'a prompt');
		}

		log(`round trips: ${options.samples} each`);
		const floorTimes = await roundTrips(direct, options.samples);
		const kloudTimes = await roundTrips(broker, options.samples);
		log(`throughput: ${options.bytes} bytes each`);
		const floorRate = await throughput(direct, options.bytes);
		const kloudRate = await throughput(broker, options.bytes);
		await stream.detach();

		const rows: Row[] = [ratioRow('keystroke → echo round trip', floorTimes, kloudTimes, Number.POSITIVE_INFINITY, 'p50 ≤ floor + 2 ms')];
		const overhead = median(kloudTimes) - median(floorTimes);
		rows[0] = {...rows[0]!, verdict: overhead <= 2 ? 'met' : 'missed'};
		const kib = (rate: number) => `${(rate / 1024).toFixed(0)} KiB/s`;
		return [
			'## Console',
			'',
			markdownTable(rows),
			'',
			`Round trip: floor p50 ${ms(median(floorTimes))} / p90 ${ms(p90(floorTimes))}; through the broker and the agent p50 ${ms(median(kloudTimes))} / p90 ${ms(p90(kloudTimes))}: **p50 ${ms(overhead)} over the floor**.`,
			`Guest output (\`yes | head -c ${options.bytes}\`) reaching the reader: floor ${kib(floorRate)}, through kloud ${kib(kloudRate)} (${(kloudRate / floorRate).toFixed(2)}× the floor; the emulated UART sets the floor).`,
			'',
		].join('\n');
	} finally {
		twin?.destroy();
		await cloud.close();
	}
}
