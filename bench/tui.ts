/**
 * TUI at scale: 10,000 VMs from 200 hosts. Measures keypress → next frame, CPU while idle with a
 * list round every second, and RSS. Goals: ≤ 50 ms per keypress, ≤ 10 % of one core, ≤ 200 MB.
 * Each round's 200 replies are made by the agent's reply code (a host whose VMs did not change
 * answers "unchanged") and decoded, validated and filled in from the cache exactly as the client
 * does; idle CPU is measured with a few hosts changing per round, and with every host changing.
 */
import '../source/production-env.js';
import {EventEmitter} from 'node:events';
import {render} from 'ink';
import {createElement} from 'react';
import {listReply, vmsVersion} from '../agent/list-version.js';
import {VmListCache} from '../source/broker/list-cache.js';
import {encode, okReply, parseReply, parseReplyValue, type HostSnapshot, type Vm} from '../source/protocol/index.js';
import {FleetStore} from '../source/state/store.js';
import type {FleetActions} from '../source/ui/actions.js';
import {App} from '../source/ui/app.js';

const HOSTS = Number(process.env.BENCH_TUI_HOSTS ?? 200);
const VMS_PER_HOST = Number(process.env.BENCH_TUI_VMS_PER_HOST ?? 50);
const IDLE_SECONDS = Number(process.env.BENCH_TUI_IDLE_SECONDS ?? 10);
const KEYPRESSES = Number(process.env.BENCH_TUI_KEYPRESSES ?? 200);
/** Hosts whose VM list changed since the previous round, in each idle round. */
const CHANGING_HOSTS = Number(process.env.BENCH_TUI_CHANGING_HOSTS ?? 5);

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

const ROSTER = Array.from({length: HOSTS}, (_, index) => `host-${String(index).padStart(3, '0')}`);

/** Host `hostIndex`'s VMs; `variant` 1 differs in one VM's state (something changed on that host). */
function hostVms(hostIndex: number, variant: number, now: number): Vm[] {
	const host = ROSTER[hostIndex]!;
	return Array.from({length: VMS_PER_HOST}, (_, index) => ({
		id: `vm-${letters(hostIndex * VMS_PER_HOST + index)}`,
		host,
		image: index % 3 === 0 ? 'debian-12' : 'demo',
		state: index % 17 === 0 || (index === 1 && variant === 1) ? 'crashed' : 'running',
		memoryMb: 256,
		cpus: 1 + (index % 4),
		pid: 1000 + index,
		createdAt: now - index * 1000,
		uptimeSeconds: index,
		ip: `10.${hostIndex % 256}.${Math.floor(index / 256)}.${index % 256}`,
		mac: null,
		exit: null,
	}));
}

type HostReplies = {readonly full: readonly Uint8Array[]; readonly unchanged: readonly Uint8Array[]};

/**
 * Each host's replies, encoded once, built by the agent's own reply code: its full list (two
 * variants) and "unchanged" for each. The benchmark measures the TUI, not the agents.
 */
function encodeReplies(): HostReplies[] {
	const now = Date.now();
	return ROSTER.map((host, hostIndex) => {
		const status = {id: host, vmCount: VMS_PER_HOST, maxVms: 64, freeMemoryMb: 1000, totalMemoryMb: 2000, accel: 'tcg' as const, images: ['demo', 'debian-12'], heartbeatMs: 5000, startedAt: now};
		const snapshots = [0, 1].map(variant => ({host: status, vms: hostVms(hostIndex, variant, now), roster: ROSTER}));
		const encoded = (value: HostSnapshot) => encode(okReply('round', value, {id: `r${hostIndex}`, from: host, ts: now}));
		return {
			full: snapshots.map(snapshot => encoded(listReply(snapshot, host, {}))),
			unchanged: snapshots.map(snapshot => encoded(listReply(snapshot, host, {known: {[host]: vmsVersion(snapshot.vms)}}))),
		};
	});
}

/** What the client does with each round's replies: decode, validate, fill unchanged lists in from its cache. */
function decodeRound(replies: readonly Uint8Array[], cache: VmListCache): HostSnapshot[] {
	const snapshots: HostSnapshot[] = [];
	const now = Date.now();
	for (const raw of replies) {
		const reply = parseReply(raw);
		if (reply.ok && reply.value.ok) {
			const value = parseReplyValue('vm.list', reply.value.value);
			const snapshot = value.ok ? cache.resolve(value.value, now) : undefined;
			if (snapshot) {
				snapshots.push(snapshot);
			}
		}
	}

	return snapshots;
}

/**
 * The replies of round `round` when `changing` hosts (round-robin) changed something since the last
 * round: those send their full list, the others "unchanged". `variants` tracks each host's list.
 */
function roundReplies(all: readonly HostReplies[], variants: number[], round: number, changing: number): Uint8Array[] {
	const changed = new Set(Array.from({length: changing}, (_, index) => (round * changing + index) % HOSTS));
	return all.map((replies, hostIndex) => {
		if (round === 0 || changed.has(hostIndex)) {
			variants[hostIndex] = round === 0 ? 0 : 1 - variants[hostIndex]!;
			return replies.full[variants[hostIndex]!]!;
		}

		return replies.unchanged[variants[hostIndex]!]!;
	});
}

/** Process CPU (share of one core) over `seconds` of 1 Hz rounds fed by `nextRound`. */
async function idleCpu(seconds: number, nextRound: () => void): Promise<number> {
	const cpuBefore = process.cpuUsage();
	const wallBefore = performance.now();
	const timer = setInterval(nextRound, 1000);
	await new Promise(resolve => setTimeout(resolve, seconds * 1000));
	clearInterval(timer);
	const cpu = process.cpuUsage(cpuBefore);
	return (cpu.user + cpu.system) / 1000 / (performance.now() - wallBefore);
}

const noop = async () => {
	throw new Error('not in the benchmark');
};
const actions: FleetActions = {refresh() {}, images: noop, start: noop, stop: noop, boot: noop, reboot: noop, delete: noop, consoleTail: noop, migrate: noop, cordon: noop, drain: noop};

async function main() {
	const store = new FleetStore(Date.now());
	store.dispatch({type: 'connection', connection: {status: 'connected'}});
	const stdout = new FakeStdout();
	const stdin = new FakeStdin();
	const all = encodeReplies();
	const variants = Array.from({length: HOSTS}, () => 0);
	const cache = new VmListCache();
	let round = 0;
	const feedRound = (changing: number) => {
		store.dispatch({type: 'round', at: Date.now(), snapshots: decodeRound(roundReplies(all, variants, round++, changing), cache), missing: []});
	};

	feedRound(HOSTS);
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

	// Idle with a 1 Hz list round: a few hosts changed something since the last round (the usual
	// case), then every host every round (the worst case: every list sent, parsed and checked).
	const cpuShare = await idleCpu(IDLE_SECONDS, () => feedRound(CHANGING_HOSTS));
	const cpuShareAllChanging = await idleCpu(IDLE_SECONDS, () => feedRound(HOSTS));
	const rssMb = process.memoryUsage().rss / 1024 / 1024;
	instance.unmount();

	const sorted = [...latencies].sort((a, b) => a - b);
	const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
	const result = {vms: HOSTS * VMS_PER_HOST, hosts: HOSTS, changingHosts: CHANGING_HOSTS, keypresses: KEYPRESSES, idleSeconds: IDLE_SECONDS, keyMedianMs: p(0.5), keyP90Ms: p(0.9), cpuShare, cpuShareAllChanging, rssMb};
	if (process.env.BENCH_JSON) {
		process.stdout.write(`${JSON.stringify(result)}\n`);
	} else {
		console.log(`TUI with ${result.vms} VMs from ${HOSTS} hosts: keypress → frame median ${p(0.5).toFixed(1)} ms, p90 ${p(0.9).toFixed(1)} ms; idle CPU at 1 Hz ${(cpuShare * 100).toFixed(1)} % of a core with ${CHANGING_HOSTS} hosts changing per round, ${(cpuShareAllChanging * 100).toFixed(1)} % with all; RSS ${rssMb.toFixed(0)} MB`);
	}

	process.exit(0);
}

await main();
