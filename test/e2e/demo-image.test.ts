/**
 * The demo base image end to end: built from Debian packages (once, into a cache shared by test runs
 * and rebuilt when the builder or the packages change), booted by real QEMU (TCG) from an overlay,
 * ready marker on the serial console, graceful power-off through QMP, and a NoCloud seed.
 */
import {spawn, execFile, type ChildProcess} from 'node:child_process';
import {existsSync} from 'node:fs';
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';
import {promisify} from 'node:util';
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest';
import {buildDemoImage, type BuildDemoImageResult} from '../../agent/image/build-runner.js';
import {findReadyMarker, POWEROFF_MARKER} from '../../agent/image/demo-image.js';
import {qmpExecute} from '../../agent/qmp.js';
import {DEMO_IMAGE_CACHE} from '../helpers/demo-image.js';

const run = promisify(execFile);

/** Shared by test files and runs; the builder keeps it fresh (a digest of its inputs is stored beside the image). */
const IMAGE_CACHE = DEMO_IMAGE_CACHE;
const MARKER_TIMEOUT_MS = 60_000;
const POWERDOWN_TIMEOUT_MS = 15_000;
const POWERDOWN_RETRY_MS = 2_000;

type Vm = {
	readonly dir: string;
	readonly consolePath: string;
	readonly qmpPath: string;
	readonly child: ChildProcess;
	readonly startedAt: number;
	readonly exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>;
	stderr(): string;
};

let image: BuildDemoImageResult;
const vms: Vm[] = [];
const dirs: string[] = [];

beforeAll(async () => {
	const started = performance.now();
	image = await buildDemoImage({outDir: IMAGE_CACHE, onProgress: line => console.info(`[demo image] ${line}`)});
	console.info(`[demo image] ${image.cached ? 'cached' : 'built'} ${image.path}, ${(image.sizeBytes / 2 ** 20).toFixed(1)} MiB, ${Math.round(performance.now() - started)} ms`);
}, 300_000);

afterEach(async () => {
	// Whatever happened in the test, no QEMU outlives it.
	await Promise.all(
		vms.splice(0).map(async vm => {
			if (vm.child.exitCode === null && vm.child.signalCode === null) {
				vm.child.kill('SIGKILL');
			}

			await vm.exited;
		}),
	);
	await Promise.all(dirs.splice(0).map(async dir => rm(dir, {recursive: true, force: true})));
});

afterAll(async () => {
	await Promise.all(dirs.splice(0).map(async dir => rm(dir, {recursive: true, force: true})));
});

/** Boots the demo image from a fresh overlay in a new temporary directory; `devices` adds QEMU arguments. */
async function boot(devices: (dir: string) => Promise<string[]>): Promise<Vm> {
	// Short path: the QMP socket path must fit in 108 bytes.
	const dir = await mkdtemp('/tmp/kl-demo-');
	dirs.push(dir);
	const extra = await devices(dir);
	const disk = join(dir, 'disk.qcow2');
	await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image.path, '-F', 'qcow2', disk]);
	const consolePath = join(dir, 'console.log');
	const qmpPath = join(dir, 'qmp.sock');
	const args = [
		'-accel', 'tcg',
		'-nodefaults',
		'-display', 'none',
		'-m', '128',
		'-drive', `file=${disk},format=qcow2,if=virtio`,
		'-serial', `file:${consolePath}`,
		'-qmp', `unix:${qmpPath},server=on,wait=off`,
		// Entropy from the start, as the agent gives its guests: the SSH host key waits for it.
		'-device', 'virtio-rng-pci',
		...extra,
	];
	const child = spawn('qemu-system-x86_64', args, {stdio: ['ignore', 'ignore', 'pipe']});
	let stderr = '';
	child.stderr?.on('data', (chunk: Buffer) => {
		stderr += chunk.toString();
	});
	const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>(resolve => {
		child.once('exit', (code, signal) => resolve({code, signal}));
		child.once('error', () => resolve({code: null, signal: null}));
	});
	const vm: Vm = {dir, consolePath, qmpPath, child, startedAt: performance.now(), exited, stderr: () => stderr};
	vms.push(vm);
	return vm;
}

async function consoleText(vm: Vm): Promise<string> {
	return readFile(vm.consolePath, 'utf8').catch(() => '');
}

/** Polls the serial console until `isDone` holds; fails with the console and QEMU's stderr. */
async function waitForConsole(vm: Vm, what: string, isDone: (text: string) => boolean, timeoutMs = MARKER_TIMEOUT_MS): Promise<string> {
	const deadline = performance.now() + timeoutMs;
	for (;;) {
		const text = await consoleText(vm);
		if (isDone(text)) {
			return text;
		}

		if (vm.child.exitCode !== null || vm.child.signalCode !== null || performance.now() > deadline) {
			throw new Error(`no ${what} on the console (QEMU ${vm.child.exitCode === null ? 'running' : `exited ${vm.child.exitCode}`}).\n--- console ---\n${text}\n--- stderr ---\n${vm.stderr()}`);
		}

		await sleep(100);
	}
}

/**
 * Presses the ACPI power button through QMP until QEMU exits by itself (a press before the guest's
 * acpid runs is lost); resolves with the time from the first press to the exit, in milliseconds.
 */
async function powerdown(vm: Vm): Promise<number> {
	const started = performance.now();
	let hasExited = false;
	void vm.exited.then(() => {
		hasExited = true;
	});
	while (!hasExited && performance.now() - started < POWERDOWN_TIMEOUT_MS) {
		await qmpExecute(vm.qmpPath, 'system_powerdown', {timeoutMs: 1_000}).catch(() => undefined);
		await Promise.race([vm.exited, sleep(POWERDOWN_RETRY_MS)]);
	}

	expect(hasExited, `QEMU still running ${POWERDOWN_TIMEOUT_MS} ms after system_powerdown`).toBe(true);
	return performance.now() - started;
}

async function requireTool(tool: string, packageName: string): Promise<void> {
	const found = await run('sh', ['-c', `command -v ${tool}`]).then(
		() => true,
		() => false,
	);
	if (!found) {
		throw new Error(`${tool} is missing: apt-get install -y ${packageName}`);
	}
}

describe('the demo image', () => {
	it('is a small qcow2 image', async () => {
		expect(existsSync(image.path)).toBe(true);
		expect(image.sizeBytes).toBeGreaterThan(4 * 2 ** 20);
		expect(image.sizeBytes).toBeLessThanOrEqual(40 * 2 ** 20);
		const {stdout} = await run('qemu-img', ['info', '--output=json', image.path]);
		expect(JSON.parse(stdout)).toMatchObject({format: 'qcow2'});
	});

	it('a second build with nothing changed is cached and fast', async () => {
		const started = performance.now();
		const again = await buildDemoImage({outDir: IMAGE_CACHE});
		expect(again).toEqual({path: image.path, sizeBytes: image.sizeBytes, cached: true});
		// apt-cache and apt-get --print-uris dominate; they are slow where apt keeps no pkgcache.bin.
		expect(performance.now() - started).toBeLessThan(10_000);
	}, 30_000);

	it('boots under TCG, prints the marker with its DHCP address, serves its hostname over HTTP, and powers off gracefully on system_powerdown', async () => {
		// Port 0: QEMU picks a free host port for the guest's port 80 (read back with `info usernet`).
		const vm = await boot(async () => ['-netdev', 'user,id=n0,hostfwd=tcp:127.0.0.1:0-:80', '-device', 'virtio-net-pci,netdev=n0']);
		const text = await waitForConsole(vm, 'KLOUD-READY with an address', output => findReadyMarker(output)?.ip !== undefined);
		const bootMs = performance.now() - vm.startedAt;
		expect(findReadyMarker(text)).toEqual({hostname: 'kloud', ip: '10.0.2.15'});

		const usernet = String(await qmpExecute(vm.qmpPath, 'human-monitor-command', {arguments: {'command-line': 'info usernet'}}));
		const port = /HOST_FORWARD\]\s+\d+\s+127\.0\.0\.1\s+(\d+)\s+10\.0\.2\.15\s+80\b/.exec(usernet)?.[1];
		expect(port, usernet).toBeDefined();
		const page = await fetch(`http://127.0.0.1:${port}/`, {signal: AbortSignal.timeout(10_000)});
		expect(page.status).toBe(200);
		expect(await page.text()).toContain('<h1>kloud</h1>');

		const powerdownMs = await powerdown(vm);
		expect(await vm.exited).toEqual({code: 0, signal: null});
		expect(await consoleText(vm)).toContain(POWEROFF_MARKER);
		console.info(`[demo image] boot to marker ${Math.round(bootMs)} ms, system_powerdown to exit ${Math.round(powerdownMs)} ms`);
	}, 180_000);

	it('takes its hostname and user-data from a NoCloud seed CD-ROM, and reports ip=none without DHCP', async () => {
		await requireTool('genisoimage', 'genisoimage');
		const vm = await boot(async dir => {
			const seed = join(dir, 'seed');
			await mkdir(seed);
			await writeFile(join(seed, 'user-data'), '#!/bin/sh\necho USERDATA-RAN-$(hostname)\n');
			await writeFile(join(seed, 'meta-data'), 'instance-id: vm-testtest\nlocal-hostname: vm-testtest\n');
			const iso = join(dir, 'seed.iso');
			await run('genisoimage', ['-quiet', '-o', iso, '-volid', 'cidata', '-joliet', '-rock', join(seed, 'user-data'), join(seed, 'meta-data')]);
			return [
				// The default machine (pc, i440FX) has the PIIX IDE controller the guest's ata_piix drives.
				'-drive', `file=${iso},format=raw,media=cdrom,if=ide,readonly=on`,
				// A NIC on a hub with nothing else on it: DHCP goes unanswered.
				'-netdev', 'hubport,id=n0,hubid=0',
				'-device', 'virtio-net-pci,netdev=n0',
			];
		});
		const text = await waitForConsole(vm, 'the user-data output', output => output.includes('KLOUD-USERDATA-DONE'));
		expect(findReadyMarker(text)).toEqual({hostname: 'vm-testtest', ip: undefined});
		expect(text).toMatch(/^USERDATA-RAN-vm-testtest\r?$/m);
		expect(text).toMatch(/KLOUD-USERDATA-DONE status=0/);
		// The marker comes first, the user-data after it.
		expect(text.indexOf('KLOUD-READY')).toBeLessThan(text.indexOf('USERDATA-RAN-'));

		await powerdown(vm);
		expect(await vm.exited).toEqual({code: 0, signal: null});
	}, 180_000);
});
