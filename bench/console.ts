/**
 * The interactive console against its floor (`BENCH_ONLY=console npm run bench`): keystroke → echo
 * round trips and guest output throughput through the broker and the agent, against a twin guest
 * (same demo image, a copy of its seed, same QEMU argv) whose serial socket chardev this process reads directly. Both
 * guests boot at once; their round trips are taken in turns (one keystroke each, alternately), so
 * both see the same load on a shared machine, and their throughput one after the other. In the same
 * turns: the broker's own two hops (a plain amqplib echo process) and, under them, a plain loopback
 * TCP echo between two Node processes (what a process wake-up costs on this machine). Then 20
 * viewers attach to the guest through the agent: its RSS and CPU, idle and while the guest floods.
 */
import {execFile} from 'node:child_process';
import {copyFile, readFile, symlink} from 'node:fs/promises';
import {createConnection, type Socket} from 'node:net';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {buildDemoImage} from '../agent/image/build-runner.js';
import {qemuArgs, QEMU_BINARY} from '../agent/qemu-args.js';
import {vmPaths} from '../agent/vm-paths.js';
import {ConsoleStream} from '../source/broker/console-stream.js';
import {createBenchCloud} from './lib/cloud.js';
import {openEchoFloor, openTcpEchoFloor} from './lib/floor.js';
import {markdownTable, median, ms, p90, ratioRow, type Row} from './lib/stats.js';

const run = promisify(execFile);

/** Something that takes guest input and hands back guest output: the console session, or the bare socket. */
type Line = {send(data: string): void; onOutput(listener: (data: Buffer) => void): void};

const PROMPT = /# (?:\u001B\[6n)?$/;

/** Keys in a burst. */
const BURST = 20;

/** Viewers attached at once for the agent's memory and CPU. */
const VIEWERS = 20;

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

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

/**
 * Round trips of one typed character to its echo, on each line in turn (a keystroke on the first,
 * then on the second, …), so a load that comes and goes weighs on every line alike; each line is
 * killed (ctrl-U) every 40 characters.
 */
async function roundTrips(lines: readonly Line[], samples: number): Promise<number[][]> {
	const said = lines.map(line => recorder(line));
	const times: number[][] = lines.map(() => []);
	for (let index = 0; index < samples + 5; index++) {
		for (const [which, line] of lines.entries()) {
			if (index % 40 === 39) {
				line.send('\u0015');
				await new Promise(resolve => setTimeout(resolve, 150));
			}

			const echoed = said[which]!.waitForOutput();
			const started = performance.now();
			line.send('a');
			await echoed;
			// The first few warm the path up.
			if (index >= 5) {
				times[which]!.push(performance.now() - started);
			}

			await new Promise(resolve => setTimeout(resolve, 5));
		}
	}

	for (const line of lines) {
		line.send('\u0015');
	}

	return times;
}

/**
 * A burst of BURST keys sent one by one in the same instant (fast typing, a paste from a terminal
 * that sends a key per write) until the last one's echo, on each line in turn, `rounds` times.
 */
async function bursts(lines: readonly Line[], rounds: number): Promise<number[][]> {
	const said = lines.map(line => recorder(line));
	const times: number[][] = lines.map(() => []);
	for (let round = 0; round < rounds; round++) {
		for (const [which, line] of lines.entries()) {
			said[which]!.clear();
			const started = performance.now();
			for (let key = 0; key < BURST; key++) {
				line.send('b');
			}

			await waitForText({text: () => said[which]!.text().replaceAll(/[^b]/g, '')}, new RegExp(`b{${BURST}}`), 30_000, 'a burst\'s echo');
			times[which]!.push(performance.now() - started);
			line.send('\u0015');
			await new Promise(resolve => setTimeout(resolve, 150));
		}
	}

	return times;
}

/** A process's resident memory (bytes) and CPU time so far (ms), from /proc. */
async function processUsage(pid: number): Promise<{rssBytes: number; cpuMs: number}> {
	const [status, stat] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/stat`, 'utf8')]);
	const rssKib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
	const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	// utime and stime, in clock ticks (100 a second here).
	return {rssBytes: rssKib * 1024, cpuMs: (Number(fields[11]) + Number(fields[12])) * 10};
}

/** The agent's CPU (% of a core) over `ms`, and its RSS at the end. */
async function agentLoad(pid: number, ms: number, during?: () => Promise<void>): Promise<{cpuPercent: number; rssBytes: number}> {
	const before = await processUsage(pid);
	const started = performance.now();
	await Promise.all([new Promise(resolve => setTimeout(resolve, ms)), during?.()]);
	const after = await processUsage(pid);
	return {cpuPercent: ((after.cpuMs - before.cpuMs) / (performance.now() - started)) * 100, rssBytes: after.rssBytes};
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
		const vm = await cloud.client.start({image: 'demo'}, {timeoutMs: 60_000});
		// The twin: the same argv the agent used, with a copy of the VM's seed (the same guest: the
		// seed decides what it runs), but its serial socket held by this process.
		const paths = vmPaths(join(cloud.dir, 'twin'), 'vm-twinfast');
		await run('mkdir', ['-p', paths.dir]);
		await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image.path, '-F', 'qcow2', paths.disk]);
		await copyFile(vmPaths(join(cloud.dir, vm.host), vm.id).seed, paths.seed);
		const twinProcess = execFile(QEMU_BINARY, qemuArgs({id: 'vm-twinfast', paths, memoryMb: 128, cpus: 1, accel: 'tcg', hasSeed: true}));
		twinProcess.on('error', () => {});
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

		log(`round trips: ${options.samples} each, in turns (with the broker's own two hops and a plain TCP echo)`);
		const hops = await openEchoFloor();
		const tcp = await openTcpEchoFloor();
		const [floorTimes = [], kloudTimes = [], hopTimes = [], tcpTimes = []] = await roundTrips([direct, broker, hops, tcp], options.samples).finally(async () => {
			await hops.close();
			await tcp.close();
		});
		const [floorBursts = [], kloudBursts = []] = await bursts([direct, broker], 10);
		log(`throughput: ${options.bytes} bytes each`);
		const floorRate = await throughput(direct, options.bytes);
		const kloudRate = await throughput(broker, options.bytes);

		// 20 viewers (read-only) beside the writer: the agent's memory and CPU, idle and in a flood.
		const agentPid = cloud.agents[0]!.process.pid!;
		const alone = await agentLoad(agentPid, 5000);
		const viewers: ConsoleStream[] = [];
		let viewerBytes = 0;
		for (let index = 0; index < VIEWERS; index++) {
			viewers.push(
				await ConsoleStream.open(cloud.client, vm.id, {
					write: false,
					timeoutMs: 10_000,
					onEvent(event) {
						if (event.type === 'output') {
							viewerBytes += event.data.length;
						}
					},
				}),
			);
		}

		const idle = await agentLoad(agentPid, 5000);
		log(`${VIEWERS} viewers attached: flooding ${options.bytes} bytes`);
		viewerBytes = 0;
		const flood = await agentLoad(agentPid, 0, async () => {
			await throughput(broker, options.bytes);
		});
		await Promise.all(viewers.map(async viewer => viewer.detach()));
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
			`Of that, the broker's own two hops (a plain amqplib echo process reached as an agent is, answering as it does, in the same turns; no kloud code): p50 ${ms(median(hopTimes))} / p90 ${ms(p90(hopTimes))}; what is left (kloud's code at both ends, the agent's second wake-up for the echo, their share of the cores beside the guest): ${ms(overhead - median(hopTimes))}.`,
			`Under both, the machine itself: a plain loopback TCP echo between two Node processes (two wake-ups, no broker) p50 ${ms(median(tcpTimes))} / p90 ${ms(p90(tcpTimes))}; the broker's two hops are four such legs plus its own work${median(hopTimes) > 2 ? `, and alone they exceed the goal's 2 ms here: no path through the broker can meet it on this machine` : ''}.`,
			`A burst of ${BURST} keys to the last one's echo: floor p50 ${ms(median(floorBursts))} / p90 ${ms(p90(floorBursts))}; through kloud p50 ${ms(median(kloudBursts))} / p90 ${ms(p90(kloudBursts))}.`,
			`Guest output (\`yes | head -c ${options.bytes}\`) reaching the reader: floor ${kib(floorRate)}, through kloud ${kib(kloudRate)} (${(kloudRate / floorRate).toFixed(2)}× the floor; the emulated UART sets the floor).`,
			`The agent with one session: RSS ${mib(alone.rssBytes)}, CPU ${alone.cpuPercent.toFixed(1)} % of a core (guest idle, 5 s); with ${VIEWERS} more viewers attached: RSS ${mib(idle.rssBytes)}, CPU ${idle.cpuPercent.toFixed(1)} % idle; while the guest floods ${options.bytes} bytes to all ${VIEWERS + 1}: CPU ${flood.cpuPercent.toFixed(1)} %, RSS ${mib(flood.rssBytes)} (the viewers got ${(viewerBytes / VIEWERS / 1024).toFixed(0)} KiB each).`,
			'',
		].join('\n');
	} finally {
		twin?.destroy();
		await cloud.close();
	}
}
