/**
 * TUI at scale: 10,000 VMs from 200 hosts. Measures keypress → next frame, CPU while idle with a
 * list round every second (each round's 200 replies decoded and validated exactly as the client
 * does), and RSS. Goals: ≤ 50 ms per keypress, ≤ 10 % of one core, ≤ 200 MB.
 */
import '../source/production-env.js';
import {EventEmitter} from 'node:events';
import {render} from 'ink';
import {createElement} from 'react';
import {encode, okReply, parseReply, parseReplyValue, type HostSnapshot, type Vm} from '../source/protocol/index.js';
import {FleetStore} from '../source/state/store.js';
import type {FleetActions} from '../source/ui/actions.js';
import {App} from '../source/ui/app.js';

const HOSTS = Number(process.env.BENCH_TUI_HOSTS ?? 200);
const VMS_PER_HOST = Number(process.env.BENCH_TUI_VMS_PER_HOST ?? 50);
const IDLE_SECONDS = Number(process.env.BENCH_TUI_IDLE_SECONDS ?? 10);
const KEYPRESSES = Number(process.env.BENCH_TUI_KEYPRESSES ?? 200);

class FakeStdout extends EventEmitter {
	columns = 120;
	rows = 40;
	isTTY = true;
	writes = 0;
	onWrite: (() => void) | undefined;
	write = (_chunk: string) => {
		this.writes++;
		this.onWrite?.();
		return true;
	};
}

class FakeStdin extends EventEmitter {
	isTTY = true;
	data: string | null = null;
	setEncoding() {}
	setRawMode() {}
	resume() {}
	pause() {}
	ref() {}
	unref() {}
	read = () => {
		const {data} = this;
		this.data = null;
		return data;
	};
	press(key: string) {
		this.data = key;
		this.emit('readable');
		this.emit('data', key);
	}
}

const letters = (n: number) => {
	let text = '';
	for (let index = 0; index < 8; index++) {
		text += String.fromCodePoint(97 + (Math.floor(n / 26 ** index) % 26));
	}

	return text;
};

function hostReplies(round: number): Uint8Array[] {
	const now = Date.now();
	const roster = Array.from({length: HOSTS}, (_, index) => `host-${String(index).padStart(3, '0')}`);
	return roster.map((host, hostIndex) => {
		const vms: Vm[] = Array.from({length: VMS_PER_HOST}, (_, index) => ({
			id: `vm-${letters(hostIndex * VMS_PER_HOST + index)}`,
			host,
			image: index % 3 === 0 ? 'debian-12' : 'demo',
			state: index % 17 === 0 ? 'crashed' : 'running',
			memoryMb: 256,
			cpus: 1 + (index % 4),
			pid: 1000 + index,
			createdAt: now - index * 1000,
			uptimeSeconds: index + round,
			ip: `10.${hostIndex % 256}.${Math.floor(index / 256)}.${index % 256}`,
			mac: null,
			exit: null,
		}));
		const snapshot: HostSnapshot = {
			host: {id: host, vmCount: vms.length, maxVms: 64, freeMemoryMb: 1000, totalMemoryMb: 2000, accel: 'tcg', images: ['demo', 'debian-12'], heartbeatMs: 5000, startedAt: now},
			vms,
			roster,
		};
		return encode(okReply('round', snapshot, {id: `r${hostIndex}`, from: host, ts: now}));
	});
}

/** What the client does with each round's replies: decode, validate, gather. */
function decodeRound(replies: readonly Uint8Array[]): HostSnapshot[] {
	const snapshots: HostSnapshot[] = [];
	for (const raw of replies) {
		const reply = parseReply(raw);
		if (reply.ok && reply.value.ok) {
			const value = parseReplyValue('vm.list', reply.value.value);
			if (value.ok) {
				snapshots.push(value.value);
			}
		}
	}

	return snapshots;
}

const noop = async () => {
	throw new Error('not in the benchmark');
};
const actions: FleetActions = {refresh() {}, images: noop, start: noop, stop: noop, consoleTail: noop};

async function main() {
	const store = new FleetStore(Date.now());
	store.dispatch({type: 'connection', connection: {status: 'connected'}});
	const stdout = new FakeStdout();
	const stdin = new FakeStdin();
	// Rounds of the same shape are encoded once: the benchmark measures the TUI, not the agents.
	const replies = [hostReplies(0), hostReplies(1)];
	const feedRound = (round: number) => {
		store.dispatch({type: 'round', at: Date.now(), snapshots: decodeRound(replies[round % 2]!), missing: []});
	};

	feedRound(0);
	// No JSX in this file: the JSX runtime import would be hoisted above production-env and load React's development build.
	const instance = render(createElement(App, {store, actions, info: {brokerUrl: 'amqp://bench', namespace: 'bench', refreshMs: 1000}}), {
		stdout: stdout as unknown as NodeJS.WriteStream,
		stdin: stdin as unknown as NodeJS.ReadStream,
		exitOnCtrlC: false,
		patchConsole: false,
		maxFps: 30,
	});
	await new Promise(resolve => setTimeout(resolve, 500));

	// Keypress → next frame.
	const latencies: number[] = [];
	for (let index = 0; index < KEYPRESSES; index++) {
		const key = index % 50 === 49 ? 'g' : 'j';
		const started = performance.now();
		await new Promise<void>(resolve => {
			stdout.onWrite = () => {
				stdout.onWrite = undefined;
				resolve();
			};
			stdin.press(key);
		});
		latencies.push(performance.now() - started);
		await new Promise(resolve => setTimeout(resolve, 40));
	}

	// Idle with a 1 Hz list round.
	const cpuBefore = process.cpuUsage();
	const wallBefore = performance.now();
	let round = 1;
	const timer = setInterval(() => feedRound(round++), 1000);
	await new Promise(resolve => setTimeout(resolve, IDLE_SECONDS * 1000));
	clearInterval(timer);
	const cpu = process.cpuUsage(cpuBefore);
	const wall = performance.now() - wallBefore;
	const cpuShare = (cpu.user + cpu.system) / 1000 / wall;
	const rssMb = process.memoryUsage().rss / 1024 / 1024;
	instance.unmount();

	const sorted = [...latencies].sort((a, b) => a - b);
	const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
	const result = {vms: HOSTS * VMS_PER_HOST, hosts: HOSTS, keypresses: KEYPRESSES, idleSeconds: IDLE_SECONDS, keyMedianMs: p(0.5), keyP90Ms: p(0.9), cpuShare, rssMb};
	if (process.env.BENCH_JSON) {
		process.stdout.write(`${JSON.stringify(result)}\n`);
	} else {
		console.log(`TUI with ${result.vms} VMs from ${HOSTS} hosts: keypress → frame median ${p(0.5).toFixed(1)} ms, p90 ${p(0.9).toFixed(1)} ms; idle CPU at 1 Hz ${(cpuShare * 100).toFixed(1)} % of a core; RSS ${rssMb.toFixed(0)} MB`);
	}

	process.exit(0);
}

await main();
