/**
 * `BENCH_ONLY=migrate npm run bench`: live migration of a demo guest (128 MiB, network none)
 * between two agents on this machine over 127.0.0.1, idle and while it dirties memory, each
 * against the floor of the same QEMU-to-QEMU migration (disk mirror over NBD, then RAM) driven
 * directly over QMP in the same run, on the same workload. Total time and QEMU's downtime.
 * Not a test: nothing here asserts.
 */
import {readFile, symlink} from 'node:fs/promises';
import {createConnection} from 'node:net';
import {join} from 'node:path';
import {buildDemoImage} from '../agent/image/build-runner.js';
import {randomPort} from '../agent/migration-plan.js';
import {qemuArgs} from '../agent/qemu-args.js';
import {qmpExecute, waitForQmp} from '../agent/qmp.js';
import {createRuntime} from '../agent/runtime.js';
import {seedFiles} from '../agent/seed.js';
import {vmPaths} from '../agent/vm-paths.js';
import {createBenchCloud} from './lib/cloud.js';
import {median, ms} from './lib/stats.js';

const MEMORY_MB = 128;
/** The dirtying guest's working set: rewritten over and over in its RAM (the initramfs root is tmpfs). */
const DIRTY_MIB = 24;

type Workload = {readonly name: string; readonly userData?: string; readonly marker: string};

const WORKLOADS: readonly Workload[] = [
	{name: 'idle', marker: 'KLOUD-READY'},
	{
		name: 'dirtying',
		// `dd` copies the file onto itself: every page of it written again, pass after pass, one
		// `DIRTY-PASS` line each (the pass rate gives the dirty rate).
		userData: `#!/bin/sh
head -c ${DIRTY_MIB * 1024 * 1024} /dev/urandom > /run/dirty
( while :; do dd if=/run/dirty of=/run/dirty bs=1M count=${DIRTY_MIB} conv=notrunc 2>/dev/null; echo DIRTY-PASS; done ) > /dev/console 2>&1 < /dev/null &
echo DIRTYING
`,
		marker: 'DIRTY-PASS',
	},
];

type Sample = {readonly totalMs: number; readonly downtimeMs: number; readonly ramMs: number};
type WorkloadResult = {readonly workload: Workload; readonly kloud: Sample[]; readonly floor: Sample[]; readonly dirtyMiBps?: number};

async function sleep(ms_: number): Promise<void> {
	await new Promise(resolve => setTimeout(resolve, ms_));
}

async function waitForFile(path: string, text: string, timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!(await readFile(path, 'utf8').catch(() => '')).includes(text)) {
		if (Date.now() > deadline) {
			throw new Error(`no "${text}" in ${path} within ${timeoutMs} ms`);
		}

		await sleep(100);
	}
}

/** The serial console of a QEMU started here (the agent reads it for its own VMs): its text so far. */
async function readConsole(socketPath: string): Promise<{readonly text: () => string; readonly close: () => void}> {
	let text = '';
	const socket = createConnection(socketPath);
	socket.setEncoding('utf8');
	socket.on('data', (chunk: string) => {
		text += chunk;
	});
	socket.on('error', () => {});
	await new Promise<void>((resolve, reject) => {
		socket.once('connect', resolve);
		socket.once('error', reject);
	});
	return {text: () => text, close: () => socket.destroy()};
}

async function passes(consolePath: string): Promise<number> {
	return ((await readFile(consolePath, 'utf8').catch(() => '')).match(/^DIRTY-PASS/gm) ?? []).length;
}

/** One direct migration: two QEMUs made here, the same QMP steps as the agents', no broker. */
async function directMigration(dir: string, base: string, workload: Workload, round: number): Promise<Sample> {
	const runtime = createRuntime();
	const tag = `${'ab'[round % 2]}${'xyz'[round % 3]}`;
	const [source, target] = ['s', 'd'].map(side => ({id: `vm-floor${tag}${side}`, paths: vmPaths(join(dir, `floor-${workload.name}-${round}`), `vm-floor${tag}${side}`)}));
	const children = [];
	for (const [index, vm] of [source!, target!].entries()) {
		await runtime.run('mkdir', ['-p', vm.paths.dir]);
		await runtime.createOverlay(base, vm.paths.disk);
		await runtime.createSeedIso(seedFiles({vmId: source!.id, ...(workload.userData === undefined ? {} : {userData: workload.userData})}), vm.paths.seed);
		const child = runtime.spawnQemu(qemuArgs({id: vm.id, paths: vm.paths, memoryMb: MEMORY_MB, cpus: 1, accel: 'tcg', hasSeed: true, isIncoming: index === 1}), {logPath: vm.paths.qemuLog});
		children.push(child);
		await waitForQmp(vm.paths.qmp, {timeoutMs: 20_000, isAlive: () => runtime.isAlive(child.pid)});
	}

	const serial = await readConsole(source!.paths.consoleSocket);
	try {
		const deadline = Date.now() + 180_000;
		while (!serial.text().includes(workload.marker)) {
			if (Date.now() > deadline) {
				throw new Error(`no "${workload.marker}" on the console of ${source!.id} within 180 s`);
			}

			await sleep(100);
		}

		const nbdPort = randomPort();
		const ramPort = randomPort();
		const started = performance.now();
		const blocks = (await qmpExecute(target!.paths.qmp, 'query-block')) as Array<{inserted?: {file?: string; 'node-name'?: string}}>;
		const node = blocks.find(block => block.inserted?.file === target!.paths.disk)?.inserted?.['node-name'];
		await qmpExecute(target!.paths.qmp, 'nbd-server-start', {arguments: {addr: {type: 'inet', data: {host: '127.0.0.1', port: String(nbdPort)}}}});
		await qmpExecute(target!.paths.qmp, 'block-export-add', {arguments: {type: 'nbd', id: 'floor', 'node-name': node, name: 'disk', writable: true}});
		await qmpExecute(target!.paths.qmp, 'migrate-incoming', {arguments: {uri: `tcp:127.0.0.1:${ramPort}`}});
		await qmpExecute(source!.paths.qmp, 'drive-mirror', {
			arguments: {'job-id': 'floor', device: 'virtio0', target: `nbd:127.0.0.1:${nbdPort}:exportname=disk`, format: 'raw', sync: 'top', mode: 'existing', 'copy-mode': 'write-blocking'},
		});
		for (;;) {
			const jobs = (await qmpExecute(source!.paths.qmp, 'query-block-jobs')) as Array<{ready?: boolean}>;
			if (jobs[0]?.ready) {
				break;
			}

			await sleep(50);
		}

		await qmpExecute(source!.paths.qmp, 'migrate-set-parameters', {arguments: {'max-bandwidth': 1024 * 1024 * 1024}});
		await qmpExecute(source!.paths.qmp, 'migrate', {arguments: {uri: `tcp:127.0.0.1:${ramPort}`}});
		let info: {status?: string; downtime?: number; 'total-time'?: number};
		for (;;) {
			info = (await qmpExecute(source!.paths.qmp, 'query-migrate')) as typeof info;
			if (info.status === 'completed' || info.status === 'failed') {
				break;
			}

			await sleep(50);
		}

		await qmpExecute(source!.paths.qmp, 'block-job-cancel', {arguments: {device: 'floor'}});
		// The export is in use until the mirror job has ended.
		while (((await qmpExecute(source!.paths.qmp, 'query-block-jobs')) as unknown[]).length > 0) {
			await sleep(10);
		}

		await qmpExecute(target!.paths.qmp, 'block-export-del', {arguments: {id: 'floor'}});
		await qmpExecute(target!.paths.qmp, 'nbd-server-stop');
		const totalMs = performance.now() - started;
		if (info.status !== 'completed') {
			throw new Error('the direct migration failed');
		}

		return {totalMs, downtimeMs: info.downtime ?? 0, ramMs: info['total-time'] ?? 0};
	} finally {
		serial.close();
		for (const child of children) {
			runtime.signal(child.pid, 'SIGKILL');
		}
	}
}

/** Runs `rounds` kloud migrations and `rounds` direct ones of each workload; returns BENCHMARKS.md's section. */
export async function measureMigration(options: {readonly rounds: number; readonly log: (line: string) => void}): Promise<string> {
	const {rounds, log} = options;
	const image = await buildDemoImage({outDir: process.env.KLOUD_TEST_IMAGE_CACHE ?? '/tmp/kloud-test-cache/images'});
	const cloud = await createBenchCloud('migrate', {agentFlags: ['--network-default', 'none', '--memory', String(MEMORY_MB), '--migration-address', '127.0.0.1']});
	const results: WorkloadResult[] = [];
	try {
		await symlink(image.path, join(cloud.dir, 'img', 'demo.qcow2'));
		const [a, b] = await cloud.addAgents(2);
		await cloud.settle();
		for (const workload of WORKLOADS) {
			const vm = await cloud.client.start({image: 'demo', host: a!.hostId, ...(workload.userData === undefined ? {} : {userData: workload.userData})}, {timeoutMs: 60_000});
			const consoleOn = (hostId: string) => join(cloud.dir, hostId, vm.id, 'console.log');
			await waitForFile(consoleOn(a!.hostId), workload.marker, 180_000);
			const kloud: Sample[] = [];
			const floor: Sample[] = [];
			let dirtyMiBps: number | undefined;
			if (workload.name === 'dirtying') {
				const before = await passes(consoleOn(a!.hostId));
				await sleep(5000);
				dirtyMiBps = ((await passes(consoleOn(a!.hostId))) - before) * DIRTY_MIB / 5;
				log(`dirtying guest: ${dirtyMiBps.toFixed(0)} MiB/s rewritten`);
			}

			let on = a!;
			for (let round = 0; round < rounds; round++) {
				const to = on === a ? b! : a!;
				const started = performance.now();
				const result = await cloud.client.migrate(vm.id, {to: to.hostId, timeoutMs: 300_000});
				kloud.push({totalMs: performance.now() - started, downtimeMs: result.downtimeMs, ramMs: result.ramMs});
				on = to;
				log(`${workload.name} kloud round ${round + 1}: ${ms(kloud.at(-1)!.totalMs)}, downtime ${result.downtimeMs} ms`);
				// kloud's guest is paused while the floor runs: on two cores it would slow the floor down.
				const {qmp} = vmPaths(join(cloud.dir, on.hostId), vm.id);
				await qmpExecute(qmp, 'stop');
				floor.push(await directMigration(cloud.dir, image.path, workload, round).finally(async () => qmpExecute(qmp, 'cont')));
				log(`${workload.name} direct round ${round + 1}: ${ms(floor.at(-1)!.totalMs)}, downtime ${floor.at(-1)!.downtimeMs} ms`);
			}

			await cloud.client.delete(vm.id, {host: on.hostId, timeoutMs: 30_000});
			results.push({workload, kloud, floor, ...(dirtyMiBps === undefined ? {} : {dirtyMiBps})});
		}
	} finally {
		await cloud.close();
	}

	return describeMigration(results, rounds);
}

function describeMigration(results: readonly WorkloadResult[], rounds: number): string {
	const rows = results.flatMap(({workload, kloud, floor, dirtyMiBps}) => {
		const what = workload.name === 'idle' ? 'idle guest' : `guest rewriting ${DIRTY_MIB} MiB of its RAM (≈ ${dirtyMiBps?.toFixed(0) ?? '?'} MiB/s)`;
		const kloudTotal = median(kloud.map(sample => sample.totalMs));
		const floorTotal = median(floor.map(sample => sample.totalMs));
		const spread = (samples: readonly Sample[], pick: (sample: Sample) => number, format: (value: number) => string) =>
			`${format(Math.min(...samples.map(pick)))}–${format(Math.max(...samples.map(pick)))}`;
		return [
			`| ${what}: total | ${ms(kloudTotal)} (${spread(kloud, sample => sample.totalMs, ms)}) | ${ms(floorTotal)} (${spread(floor, sample => sample.totalMs, ms)}) | ${(kloudTotal / floorTotal).toFixed(2)}× |`,
			`| ${what}: RAM phase (QEMU's total-time) | ${ms(median(kloud.map(sample => sample.ramMs)))} (${spread(kloud, sample => sample.ramMs, ms)}) | ${ms(median(floor.map(sample => sample.ramMs)))} (${spread(floor, sample => sample.ramMs, ms)}) | – |`,
			`| ${what}: QEMU downtime | ${median(kloud.map(sample => sample.downtimeMs))} ms (${spread(kloud, sample => sample.downtimeMs, String)}) | ${median(floor.map(sample => sample.downtimeMs))} ms (${spread(floor, sample => sample.downtimeMs, String)}) | – |`,
		];
	});
	return [
		'## Live migration',
		'',
		`A demo guest (${MEMORY_MB} MiB, TCG, no NIC) moved between two agents on this machine over 127.0.0.1, ${rounds} rounds of each, medians (min–max).`,
		'kloud: `vm.migrate` request to answer (the destination prepared: overlay, incoming QEMU, NBD export; disk',
		'mirror; RAM; commit; the source\'s copy removed). Floor: the same QMP steps on two QEMUs started directly, in the',
		'same run, from the destination\'s `nbd-server-start` to the end of the mirror (`bench/migrate.ts`): kloud\'s total',
		'also holds what the floor leaves out (the destination\'s overlay, seed and QEMU spawn, three agent-to-agent requests).',
		'The dirtying guest copies a 24 MiB file in its tmpfs onto itself in a loop; its rate is measured over 5 s before the',
		'first round. kloud\'s guest is paused while the floor runs (two cores).',
		'',
		'| measure | kloud | direct QEMU-to-QEMU | ratio |',
		'| --- | --- | --- | --- |',
		...rows,
		'',
	].join('\n');
}
