/**
 * `npm run build && node dist/bench/migrate.js`: live migration of an idle demo guest (128 MiB,
 * booted to its ready marker, network none) between two agents on this machine over 127.0.0.1,
 * against the floor of the same QEMU-to-QEMU migration (disk mirror over NBD, then RAM) driven
 * directly over QMP in the same run. Prints total time and QEMU's downtime. Not a test.
 * `BENCH_QUICK=1`: one round each instead of three.
 */
import {readFile, symlink} from 'node:fs/promises';
import {join} from 'node:path';
import {buildDemoImage} from '../agent/image/build-runner.js';
import {qemuArgs} from '../agent/qemu-args.js';
import {qmpExecute, waitForQmp} from '../agent/qmp.js';
import {createRuntime} from '../agent/runtime.js';
import {seedFiles} from '../agent/seed.js';
import {vmPaths} from '../agent/vm-paths.js';
import {createBenchCloud} from './lib/cloud.js';
import {median, ms} from './lib/stats.js';

const ROUNDS = process.env.BENCH_QUICK === '1' ? 1 : 3;
const MEMORY_MB = 128;
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

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

/** One direct migration: two QEMUs made here, the same QMP steps as the agents', no broker. */
async function directMigration(dir: string, base: string, round: number): Promise<{totalMs: number; downtimeMs: number}> {
	const runtime = createRuntime();
	const ids = [`vm-floor${'ab'[round % 2]}${'xyz'[round % 3]}s`, `vm-floor${'ab'[round % 2]}${'xyz'[round % 3]}d`];
	const [source, target] = ids.map(id => ({id, paths: vmPaths(join(dir, 'floor'), id)}));
	const children = [];
	for (const [index, vm] of [source!, target!].entries()) {
		await runtime.run('mkdir', ['-p', vm.paths.dir]);
		await runtime.createOverlay(base, vm.paths.disk);
		await runtime.createSeedIso(seedFiles({vmId: source!.id}), vm.paths.seed);
		const child = runtime.spawnQemu(qemuArgs({id: vm.id, paths: vm.paths, memoryMb: MEMORY_MB, cpus: 1, accel: 'tcg', hasSeed: true, isIncoming: index === 1}), {logPath: vm.paths.qemuLog});
		children.push(child);
		await waitForQmp(vm.paths.qmp, {timeoutMs: 20_000, isAlive: () => runtime.isAlive(child.pid)});
	}

	try {
		await waitForFile(source!.paths.console, 'KLOUD-READY', 120_000);
		const started = performance.now();
		const blocks = (await qmpExecute(target!.paths.qmp, 'query-block')) as Array<{inserted?: {file?: string; 'node-name'?: string}}>;
		const node = blocks.find(block => block.inserted?.file === target!.paths.disk)?.inserted?.['node-name'];
		await qmpExecute(target!.paths.qmp, 'nbd-server-start', {arguments: {addr: {type: 'inet', data: {host: '127.0.0.1', port: String(50_100 + round)}}}});
		await qmpExecute(target!.paths.qmp, 'block-export-add', {arguments: {type: 'nbd', id: 'floor', 'node-name': node, name: 'disk', writable: true}});
		await qmpExecute(target!.paths.qmp, 'migrate-incoming', {arguments: {uri: `tcp:127.0.0.1:${50_200 + round}`}});
		await qmpExecute(source!.paths.qmp, 'drive-mirror', {
			arguments: {'job-id': 'floor', device: 'virtio0', target: `nbd:127.0.0.1:${50_100 + round}:exportname=disk`, format: 'raw', sync: 'top', mode: 'existing', 'copy-mode': 'write-blocking'},
		});
		for (;;) {
			const jobs = (await qmpExecute(source!.paths.qmp, 'query-block-jobs')) as Array<{ready?: boolean}>;
			if (jobs[0]?.ready) {
				break;
			}

			await sleep(50);
		}

		await qmpExecute(source!.paths.qmp, 'migrate-set-parameters', {arguments: {'max-bandwidth': 1024 * 1024 * 1024}});
		await qmpExecute(source!.paths.qmp, 'migrate', {arguments: {uri: `tcp:127.0.0.1:${50_200 + round}`}});
		let info: {status?: string; downtime?: number};
		for (;;) {
			info = (await qmpExecute(source!.paths.qmp, 'query-migrate')) as typeof info;
			if (info.status === 'completed' || info.status === 'failed') {
				break;
			}

			await sleep(50);
		}

		await qmpExecute(source!.paths.qmp, 'block-job-cancel', {arguments: {device: 'floor'}});
		await qmpExecute(target!.paths.qmp, 'block-export-del', {arguments: {id: 'floor'}});
		await qmpExecute(target!.paths.qmp, 'nbd-server-stop');
		const totalMs = performance.now() - started;
		if (info.status !== 'completed') {
			throw new Error('the direct migration failed');
		}

		return {totalMs, downtimeMs: info.downtime ?? 0};
	} finally {
		for (const child of children) {
			runtime.signal(child.pid, 'SIGKILL');
		}
	}
}

async function main(): Promise<void> {
	const image = await buildDemoImage({outDir: process.env.KLOUD_TEST_IMAGE_CACHE ?? '/tmp/kloud-test-cache/images'});
	const cloud = await createBenchCloud('migrate', {agentFlags: ['--network-default', 'none', '--memory', String(MEMORY_MB), '--migration-address', '127.0.0.1']});
	const kloud: Array<{totalMs: number; downtimeMs: number}> = [];
	const floor: Array<{totalMs: number; downtimeMs: number}> = [];
	try {
		await symlink(image.path, join(cloud.dir, 'img', 'demo.qcow2'));
		const [a, b] = await cloud.addAgents(2);
		await cloud.settle();
		const vm = await cloud.client.start({image: 'demo', host: a!.hostId}, {timeoutMs: 60_000});
		await waitForFile(join(cloud.dir, a!.hostId, vm.id, 'console.log'), 'KLOUD-READY', 120_000);
		for (let round = 0; round < ROUNDS; round++) {
			const to = round % 2 === 0 ? b! : a!;
			const started = performance.now();
			const result = await cloud.client.migrate(vm.id, {to: to.hostId, timeoutMs: 300_000});
			kloud.push({totalMs: performance.now() - started, downtimeMs: result.downtimeMs});
			log(`kloud round ${round + 1}: ${ms(kloud.at(-1)!.totalMs)}, downtime ${result.downtimeMs} ms`);
			floor.push(await directMigration(cloud.dir, image.path, round));
			log(`direct round ${round + 1}: ${ms(floor.at(-1)!.totalMs)}, downtime ${floor.at(-1)!.downtimeMs} ms`);
		}
	} finally {
		await cloud.close();
	}

	const kloudTotal = median(kloud.map(entry => entry.totalMs));
	const floorTotal = median(floor.map(entry => entry.totalMs));
	const lines = [
		'| idle demo guest, 128 MiB, TCG, over 127.0.0.1 | kloud `vm.migrate` (request to answer) | direct QEMU-to-QEMU (QMP, same steps) | ratio |',
		'| --- | --- | --- | --- |',
		`| total, median of ${ROUNDS} | ${ms(kloudTotal)} | ${ms(floorTotal)} | ${(kloudTotal / floorTotal).toFixed(2)}× |`,
		`| QEMU downtime, median | ${median(kloud.map(entry => entry.downtimeMs))} ms | ${median(floor.map(entry => entry.downtimeMs))} ms | – |`,
	];
	process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
