/**
 * Real QEMU (TCG) against the runtime, QMP client and discovery: overlay → spawn → QMP → discover
 * → quit/kill, plus a VM outliving a SIGKILLed or SIGTERMed agent.
 */
import {execFile, spawn} from 'node:child_process';
import {randomInt} from 'node:crypto';
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises';
import {connect} from 'node:net';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest';
import {discoverVms} from '../agent/discover.js';
import {qemuArgs} from '../agent/qemu-args.js';
import {QmpError, qmpExecute, waitForQmp} from '../agent/qmp.js';
import {OverlayError, SeedIsoError, createRuntime} from '../agent/runtime.js';
import {vmPaths, type VmPaths} from '../agent/vm-paths.js';

const execFileAsync = promisify(execFile);
const runtime = createRuntime();
const REPO = fileURLToPath(new URL('..', import.meta.url));

let tmp = '';
let base = '';
let stateRoot = '';
/** Every QEMU or helper process a test started: killed after each test, pass or fail. */
const started: number[] = [];

const randomVmId = (): string => `vm-${Array.from({length: 8}, () => String.fromCharCode(97 + randomInt(26))).join('')}`;

async function newVm(): Promise<{id: string; paths: VmPaths}> {
	const id = randomVmId();
	const paths = vmPaths(stateRoot, id);
	await mkdir(paths.dir, {recursive: true});
	return {id, paths};
}

async function waitUntilDead(pid: number, timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (runtime.isAlive(pid)) {
		if (Date.now() > deadline) {
			throw new Error(`pid ${pid} still alive after ${timeoutMs} ms`);
		}

		await new Promise(resolve => setTimeout(resolve, 10));
	}
}

/** Field `index` (1-based, as in proc(5)) of /proc/<pid>/stat. */
async function procStatField(pid: number, index: number): Promise<number> {
	const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
	const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	return Number(fields[index - 3]);
}

beforeAll(async () => {
	// Short paths: the QMP socket path must stay under 108 bytes.
	tmp = await mkdtemp('/tmp/krt-');
	base = join(tmp, 'base.qcow2');
	stateRoot = join(tmp, 's');
	await execFileAsync('qemu-img', ['create', '-f', 'qcow2', base, '64M']);
});

afterEach(() => {
	for (const pid of started.splice(0)) {
		runtime.signal(pid, 'SIGKILL');
	}
});

afterAll(async () => {
	// A VM whose pid a failed test never learnt is still found by its name and state dir.
	if (stateRoot !== '') {
		for (const vm of discoverVms(await runtime.listProcesses(), stateRoot)) {
			runtime.signal(vm.pid, 'SIGKILL');
		}
	}

	if (tmp !== '') {
		await rm(tmp, {recursive: true, force: true});
	}
});

describe('createOverlay', () => {
	it('creates a qcow2 overlay backed by the absolute base path', async () => {
		const {paths} = await newVm();
		await runtime.createOverlay(base, paths.disk);
		const {stdout} = await execFileAsync('qemu-img', ['info', '--output=json', paths.disk]);
		const info = JSON.parse(stdout) as Record<string, unknown>;
		expect(info).toMatchObject({'format': 'qcow2', 'backing-filename': base, 'backing-filename-format': 'qcow2'});
		// imageInfo names the backing file as the overlay holds it (a migration sends its base's hash from it).
		expect(await runtime.imageInfo(paths.disk)).toEqual({virtualBytes: info['virtual-size'], backingFile: base});
		expect((await runtime.imageInfo(base)).backingFile).toBeUndefined();
	});

	it('refuses to overwrite an existing disk', async () => {
		const {paths} = await newVm();
		await runtime.createOverlay(base, paths.disk);
		await writeFile(paths.meta, 'sentinel');
		await expect(runtime.createOverlay(base, paths.disk)).rejects.toThrow(OverlayError);
		await expect(runtime.createOverlay(base, paths.disk)).rejects.toThrow(/already exists/);
	});

	it("fails with qemu-img's stderr when the base is missing", async () => {
		const {paths} = await newVm();
		const error: unknown = await runtime.createOverlay(join(tmp, 'missing.qcow2'), paths.disk).catch((error_: unknown) => error_);
		expect(error).toBeInstanceOf(OverlayError);
		expect((error as Error).message).toMatch(/missing\.qcow2/);
		expect((error as Error).message).toMatch(/No such file|Could not open/);
		expect((error as Error).cause).toBeDefined();
	});
});

describe('createSeedIso', () => {
	it('writes a NoCloud seed: volume cidata, the files at its root (Rock Ridge names), no staging left', async () => {
		const {paths} = await newVm();
		const files = {'user-data': '#!/bin/sh\necho hi\n', 'meta-data': 'instance-id: vm-x\nlocal-hostname: vm-x\n'};
		await runtime.createSeedIso(files, paths.seed);
		const {stdout: info} = await execFileAsync('isoinfo', ['-d', '-i', paths.seed]);
		expect(info).toMatch(/^Volume id: cidata$/m);
		expect(info).toMatch(/Rock Ridge signatures version/);
		expect(info).toMatch(/Joliet with UCS level/);
		for (const [name, content] of Object.entries(files)) {
			const {stdout} = await execFileAsync('isoinfo', ['-R', '-i', paths.seed, '-x', `/${name}`]);
			expect(stdout).toBe(content);
		}

		expect((await readdir(paths.dir)).sort()).toEqual(['seed.iso']);
	});

	it('refuses a file name that could be a path', async () => {
		const {paths} = await newVm();
		await expect(runtime.createSeedIso({'../user-data': 'x'}, paths.seed)).rejects.toThrow(SeedIsoError);
		await expect(runtime.createSeedIso({'../user-data': 'x'}, paths.seed)).rejects.toThrow(/invalid file name/);
	});

	it('says what failed when the ISO cannot be written', async () => {
		const error: unknown = await runtime.createSeedIso({'user-data': 'x'}, join(tmp, 'no-such-dir', 'seed.iso')).catch((error_: unknown) => error_);
		expect(error).toBeInstanceOf(SeedIsoError);
		expect((error as Error).message).toMatch(/cannot make seed .*seed\.iso/);
		expect((error as Error).cause).toBeDefined();
	});

	it("fails with genisoimage's own words when it fails", async () => {
		const {paths} = await newVm();
		// The output path is a directory: genisoimage cannot open it for writing.
		await mkdir(paths.seed);
		const error: unknown = await runtime.createSeedIso({'user-data': 'x'}, paths.seed).catch((error_: unknown) => error_);
		expect(error).toBeInstanceOf(SeedIsoError);
		expect((error as Error).message).toMatch(/cannot make seed .*seed\.iso: .*(directory|Unable to open)/i);
		expect((await readdir(paths.dir)).sort()).toEqual(['seed.iso']);
	});
});

describe('QEMU lifecycle', () => {
	it('spawns, answers QMP, is discovered, quits through QMP', async () => {
		const {id, paths} = await newVm();
		await runtime.createOverlay(base, paths.disk);
		const args = qemuArgs({id, paths, memoryMb: 64, cpus: 1, accel: 'tcg'});

		const t0 = performance.now();
		const vm = runtime.spawnQemu(args, {logPath: paths.qemuLog});
		started.push(vm.pid);
		await waitForQmp(paths.qmp, {timeoutMs: 10_000, isAlive: () => runtime.isAlive(vm.pid)});
		const spawnToQmpMs = performance.now() - t0;
		console.log(`spawn → QMP answering: ${spawnToQmpMs.toFixed(1)} ms`);
		expect(spawnToQmpMs).toBeLessThan(5_000);

		// Its own session and process group, away from the test runner's.
		expect(await procStatField(vm.pid, 6)).toBe(vm.pid);
		expect(await procStatField(vm.pid, 5)).toBe(vm.pid);
		expect(await procStatField(vm.pid, 6)).not.toBe(await procStatField(process.pid, 6));
		expect((await readFile(paths.pid, 'utf8')).trim()).toBe(String(vm.pid));

		const t1 = performance.now();
		const rows = await runtime.listProcesses();
		console.log(`listProcesses: ${rows.length} rows in ${(performance.now() - t1).toFixed(1)} ms`);
		expect(rows.find(row => row.pid === vm.pid)).toMatchObject({name: id});
		// Discovered with the start time the spawn read: signals then reach this process only.
		expect(vm.startTime).toBeGreaterThan(0);
		expect(discoverVms(rows, stateRoot)).toContainEqual({id, pid: vm.pid, startTime: vm.startTime});
		expect(discoverVms(rows, join(tmp, 'other'))).not.toContainEqual(expect.objectContaining({id, pid: vm.pid}));

		expect(await qmpExecute(paths.qmp, 'query-status')).toMatchObject({status: 'running', running: true});
		expect(await qmpExecute(paths.qmp, 'query-name')).toEqual({name: `qemu-${id}`});
		const unknown: unknown = await qmpExecute(paths.qmp, 'no-such-command').catch((error: unknown) => error);
		expect(unknown).toBeInstanceOf(QmpError);
		expect((unknown as QmpError).errorClass).toBe('CommandNotFound');

		const t2 = performance.now();
		expect(await qmpExecute(paths.qmp, 'quit')).toEqual({});
		expect(await vm.exited).toEqual({code: 0, signal: null});
		console.log(`QMP quit → exited: ${(performance.now() - t2).toFixed(1)} ms`);
		expect(runtime.isAlive(vm.pid)).toBe(false);
		expect(runtime.signal(vm.pid, 'SIGTERM')).toBe(false);
	});

	it('reports a SIGKILLed VM through exited and isAlive', async () => {
		const {id, paths} = await newVm();
		await runtime.createOverlay(base, paths.disk);
		const vm = runtime.spawnQemu(qemuArgs({id, paths, memoryMb: 64, cpus: 1, accel: 'tcg'}), {logPath: paths.qemuLog});
		started.push(vm.pid);
		await waitForQmp(paths.qmp, {timeoutMs: 10_000, isAlive: () => runtime.isAlive(vm.pid)});

		const t0 = performance.now();
		expect(runtime.signal(vm.pid, 'SIGKILL')).toBe(true);
		expect(await vm.exited).toEqual({code: null, signal: 'SIGKILL'});
		console.log(`SIGKILL → exited: ${(performance.now() - t0).toFixed(1)} ms`);
		expect(runtime.isAlive(vm.pid)).toBe(false);
		expect(discoverVms(await runtime.listProcesses(), stateRoot)).not.toContainEqual({id, pid: vm.pid});
	});

	it('fails waitForQmp at once when QEMU exits during start-up', async () => {
		const {id, paths} = await newVm();
		// No overlay: QEMU cannot open its disk and exits straight away.
		const vm = runtime.spawnQemu(qemuArgs({id, paths, memoryMb: 64, cpus: 1, accel: 'tcg'}), {logPath: paths.qemuLog});
		started.push(vm.pid);

		const t0 = performance.now();
		const timeoutMs = 10_000;
		const error: unknown = await waitForQmp(paths.qmp, {timeoutMs, isAlive: () => runtime.isAlive(vm.pid)}).catch(
			(error_: unknown) => error_,
		);
		const elapsedMs = performance.now() - t0;
		console.log(`dead QEMU noticed by waitForQmp after ${elapsedMs.toFixed(1)} ms`);
		expect(error).toBeInstanceOf(QmpError);
		expect((error as Error).message).toMatch(/exited before/);
		expect(elapsedMs).toBeLessThan(2_000);
		expect(await vm.exited).toEqual({code: 1, signal: null});
		expect(await readFile(paths.qemuLog, 'utf8')).toMatch(/disk\.qcow2/);
	});

	it('appends to the QEMU log instead of truncating it', async () => {
		const {id, paths} = await newVm();
		await writeFile(paths.qemuLog, 'earlier run\n');
		const vm = runtime.spawnQemu(qemuArgs({id, paths, memoryMb: 64, cpus: 1, accel: 'tcg'}), {logPath: paths.qemuLog});
		started.push(vm.pid);
		await vm.exited;
		const log = await readFile(paths.qemuLog, 'utf8');
		expect(log.startsWith('earlier run\n')).toBe(true);
		expect(log.length).toBeGreaterThan('earlier run\n'.length);
	});
});

describe('isAlive', () => {
	it('treats a zombie as dead', async () => {
		// `sleep 0.3` exits and stays unreaped: the exec'd `sleep 30` never waits for children. (It must
		// outlive the shell's own part: a child that ends before the exec may be reaped by the shell.)
		const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], {stdio: ['ignore', 'pipe', 'ignore']});
		started.push(parent.pid!);
		const zombie = Number(await new Promise<string>(resolve => parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
		const deadline = Date.now() + 5_000;
		while (!(await readFile(`/proc/${zombie}/stat`, 'utf8')).includes(') Z ')) {
			expect(Date.now()).toBeLessThan(deadline);
			await new Promise(resolve => setTimeout(resolve, 10));
		}

		expect(() => process.kill(zombie, 0)).not.toThrow();
		expect(runtime.isAlive(zombie)).toBe(false);
		expect(runtime.isAlive(parent.pid!)).toBe(true);
		expect(runtime.isAlive(process.pid)).toBe(true);
	});
});

describe('qmpExecute failures', () => {
	it('rejects with QmpError when there is no socket', async () => {
		await expect(qmpExecute(join(tmp, 'nothing.sock'), 'query-status')).rejects.toThrow(QmpError);
	});

	it('times out while another client holds the socket (one client at a time)', async () => {
		const {id, paths} = await newVm();
		await runtime.createOverlay(base, paths.disk);
		const vm = runtime.spawnQemu(qemuArgs({id, paths, memoryMb: 64, cpus: 1, accel: 'tcg'}), {logPath: paths.qemuLog});
		started.push(vm.pid);
		await waitForQmp(paths.qmp, {timeoutMs: 10_000, isAlive: () => runtime.isAlive(vm.pid)});

		const holder = connect({path: paths.qmp});
		await new Promise(resolve => holder.once('data', resolve));
		try {
			const error: unknown = await qmpExecute(paths.qmp, 'query-status', {timeoutMs: 300}).catch((error_: unknown) => error_);
			expect(error).toBeInstanceOf(QmpError);
			expect((error as Error).message).toMatch(/timed out after 300 ms waiting for the greeting/);
		} finally {
			holder.destroy();
		}

		// Once the holder lets go, the next session gets its greeting.
		await waitForQmp(paths.qmp, {timeoutMs: 5_000, isAlive: () => runtime.isAlive(vm.pid)});
	});

	it('stops waitForQmp on abort', async () => {
		const controller = new AbortController();
		const waiting = waitForQmp(join(tmp, 'never.sock'), {timeoutMs: 10_000, isAlive: () => true, signal: controller.signal});
		setTimeout(() => controller.abort(new Error('shutting down')), 50);
		await expect(waiting).rejects.toThrow(/aborted/);
	});
});

describe('VMs outlive the agent', () => {
	const cases = [{signal: 'SIGKILL'}, {signal: 'SIGTERM'}] as const;
	for (const {signal} of cases) {
		it(`keeps the VM running when the agent's whole process group gets ${signal}`, async () => {
			const {id, paths} = await newVm();
			await runtime.createOverlay(base, paths.disk);
			// A stand-in agent: spawns the VM through the runtime, reports its pid, then idles.
			const script = join(tmp, `agent-${id}.ts`);
			await writeFile(
				script,
				[
					`import {createRuntime} from ${JSON.stringify(join(REPO, 'agent/runtime.ts'))};`,
					`import {qemuArgs} from ${JSON.stringify(join(REPO, 'agent/qemu-args.ts'))};`,
					`import {vmPaths} from ${JSON.stringify(join(REPO, 'agent/vm-paths.ts'))};`,
					`const paths = vmPaths(${JSON.stringify(stateRoot)}, ${JSON.stringify(id)});`,
					`const vm = createRuntime().spawnQemu(qemuArgs({id: ${JSON.stringify(id)}, paths, memoryMb: 64, cpus: 1, accel: 'tcg'}), {logPath: paths.qemuLog});`,
					`console.log(JSON.stringify({pid: vm.pid}));`,
					`setInterval(() => {}, 1000);`,
				].join('\n'),
			);
			const agent = spawn(join(REPO, 'node_modules/.bin/vite-node'), [script], {
				cwd: REPO,
				detached: true,
				stdio: ['ignore', 'pipe', 'inherit'],
			});
			started.push(agent.pid!);
			const agentExited = new Promise(resolve => agent.once('exit', resolve));
			const firstLine = await new Promise<string>((resolve, reject) => {
				let output = '';
				agent.stdout.on('data', (chunk: Buffer) => {
					output += chunk.toString();
					if (output.includes('\n')) {
						resolve(output.split('\n')[0]!);
					}
				});
				agent.once('exit', code => reject(new Error(`stand-in agent exited with ${code} before reporting`)));
			});
			const {pid} = JSON.parse(firstLine) as {pid: number};
			started.push(pid);
			await waitForQmp(paths.qmp, {timeoutMs: 10_000, isAlive: () => runtime.isAlive(pid)});

			// The agent's process group: what a terminal's Ctrl-C or `kill -- -pgid` reaches.
			process.kill(-agent.pid!, signal);
			await agentExited;
			await new Promise(resolve => setTimeout(resolve, 200));

			expect(runtime.isAlive(pid)).toBe(true);
			expect(await qmpExecute(paths.qmp, 'query-status')).toMatchObject({status: 'running'});
			expect(discoverVms(await runtime.listProcesses(), stateRoot)).toContainEqual(expect.objectContaining({id, pid}));

			// No longer our child: it ends as someone else's (possibly unreaped) child.
			expect(runtime.signal(pid, 'SIGKILL')).toBe(true);
			await waitUntilDead(pid, 5_000);
		});
	}
});
