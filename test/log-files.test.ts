/**
 * Capped logs on real files: rotation copies the tail to `<log>.1` and truncates the log under a
 * live O_APPEND writer (a shell appending as fast as it can, as QEMU and dnsmasq append), and the
 * last N bytes are read across the two files.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {readLogTail, rotatedPath, rotateLog} from '../agent/log-files.js';
import {dnsmasqArgs, privateLayout, privateNetworkPaths} from '../agent/network.js';
import {waitFor} from './helpers/cloud.js';
import {createLab} from './helpers/netns.js';

const KIB = 1024;
const CAP = 256 * KIB;

let dir: string;
let writer: ChildProcess | undefined;

beforeEach(async () => {
	dir = await mkdtemp(join(tmpdir(), 'kloud-logs-'));
});

afterEach(async () => {
	writer?.kill('SIGKILL');
	writer = undefined;
	await rm(dir, {recursive: true, force: true});
});

/** A shell writing numbered lines to `path` without end: `>>` opens with O_APPEND, `>` without. */
function startWriter(path: string, redirect: '>>' | '>'): ChildProcess {
	const child = spawn('sh', ['-c', `exec ${redirect}"$1"; i=0; while :; do i=$((i+1)); echo "line $i"; done`, 'sh', path], {stdio: 'ignore'});
	return child;
}

async function sizeOf(path: string): Promise<number> {
	return (await stat(path).catch(() => undefined))?.size ?? 0;
}

/** The first 16 bytes of a file. */
async function firstBytes(path: string): Promise<string> {
	return (await readFile(path)).subarray(0, 16).toString('latin1');
}

/** Line numbers in `text`, skipping a partial first line. */
function lineNumbers(text: string): number[] {
	return text
		.split('\n')
		.slice(1, -1)
		.map(line => Number(/^line (\d+)$/.exec(line)?.[1] ?? Number.NaN));
}

describe('rotateLog and readLogTail', () => {
	it('keeps a log under an O_APPEND writer within its cap, and the tail reads the newest lines across the rotation', async () => {
		const path = join(dir, 'console.log');
		writer = startWriter(path, '>>');
		for (let rotation = 1; rotation <= 5; rotation++) {
			await waitFor(async () => (await sizeOf(path)) >= CAP / 2, 20_000, 'the writer to fill half the cap');
			const result = await rotateLog(path, CAP);
			expect(result.isRotated).toBe(true);
			// With O_APPEND the writer goes on at the new end: the log starts with its newest lines, not
			// with a hole (zeros) up to the writer's old offset.
			await waitFor(async () => (await sizeOf(path)) > 0, 20_000, 'the writer to go on');
			expect(await firstBytes(path), `the log's start after rotation ${rotation}`).toMatch(/^line \d+\n/);
			expect(await sizeOf(rotatedPath(path))).toBe(result.isRotated ? result.keptBytes : -1);
		}

		writer.kill('SIGKILL');
		await new Promise(resolve => writer!.once('exit', resolve));
		const whole = await readFile(path, 'utf8');
		const last = lineNumbers(`x\n${whole}`).at(-1);
		// A read longer than the log reaches back into `.1`, in order, ending with the newest line.
		const tail = await readLogTail(path, (await sizeOf(path)) + 64 * KIB);
		const numbers = lineNumbers(tail.data.toString('utf8'));
		expect(numbers.at(-1)).toBe(last);
		expect(numbers.every((value, index) => index === 0 || value > numbers[index - 1]!)).toBe(true);
		expect(numbers.length).toBeGreaterThan(1000);
		expect(tail.sizeBytes).toBe((await sizeOf(path)) + (await sizeOf(rotatedPath(path))));
	}, 60_000);

	it('a writer without O_APPEND would leave a hole after truncation: why the agent needs append-mode writers', async () => {
		const path = join(dir, 'plain.log');
		writer = startWriter(path, '>');
		await waitFor(async () => (await sizeOf(path)) >= CAP / 2, 20_000, 'the writer to fill half the cap');
		const result = await rotateLog(path, CAP);
		expect(result.isRotated).toBe(true);
		await waitFor(async () => (await sizeOf(path)) > 0, 20_000, 'the writer to go on');
		expect(await firstBytes(path)).toMatch(/^\0+$/);
	}, 60_000);

	it('reads the end of `.1` and all of the log when the log is shorter than asked', async () => {
		const path = join(dir, 'console.log');
		const old = Buffer.from('a'.repeat(CAP / 2 - 8) + 'OLD-END\n');
		await writeFile(path, old);
		const result = await rotateLog(path, CAP);
		expect(result).toEqual({isRotated: true, keptBytes: old.length, sizeBefore: old.length});
		expect(await sizeOf(path)).toBe(0);
		await writeFile(path, 'NEW\n', {flag: 'a'});
		expect((await readLogTail(path, 12)).data.toString()).toBe('OLD-END\nNEW\n');
		expect((await readLogTail(path, 4)).data.toString()).toBe('NEW\n');
		expect((await readLogTail(path, 12)).sizeBytes).toBe(old.length + 4);
		expect(await readLogTail(join(dir, 'missing.log'), 100)).toEqual({data: Buffer.alloc(0), sizeBytes: 0});
	});

	it('leaves a log under half the cap alone, and a missing log is no error', async () => {
		const path = join(dir, 'small.log');
		await writeFile(path, 'x'.repeat(CAP / 2 - 1));
		expect(await rotateLog(path, CAP)).toEqual({isRotated: false});
		expect(await sizeOf(path)).toBe(CAP / 2 - 1);
		expect(await rotateLog(join(dir, 'gone', 'console.log'), CAP)).toEqual({isRotated: false});
	});

	it('dnsmasq, started with the agent\'s own argv, appends to its log: rotated, it goes on at the start', async () => {
		const lab = createLab();
		try {
			const netns = await lab.addNamespace('dq');
			const layout = privateLayout('10.77.0.0/24', 0);
			const paths = privateNetworkPaths(dir);
			await mkdir(paths.dir, {recursive: true});
			await lab.exec(netns, 'ip', ['link', 'add', 'kloud0', 'type', 'bridge']);
			await lab.exec(netns, 'ip', ['addr', 'add', `${layout.gateway}/${layout.prefix}`, 'dev', 'kloud0']);
			await lab.exec(netns, 'ip', ['link', 'set', 'kloud0', 'up']);
			await lab.exec(netns, 'dnsmasq', dnsmasqArgs({bridge: 'kloud0', layout, owner: 'kloud test', paths}));
			const pid = Number((await readFile(paths.pid, 'utf8')).trim());
			const fds = await readdir(`/proc/${pid}/fd`);
			const logFd = (await Promise.all(fds.map(async fd => ({fd, target: await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')})))).find(entry => entry.target === paths.log);
			expect(logFd, 'dnsmasq has its log open').toBeDefined();
			const flags = Number.parseInt(/^flags:\s+(\d+)$/m.exec(await readFile(`/proc/${pid}/fdinfo/${logFd!.fd}`, 'utf8'))?.[1] ?? '0', 8);
			expect(flags & 0o2000, 'O_APPEND').toBe(0o2000);

			// SIGUSR1: dnsmasq writes its cache statistics to the log, a few lines each time.
			const cap = 2 * KIB;
			await waitFor(async () => {
				process.kill(pid, 'SIGUSR1');
				return (await sizeOf(paths.log)) >= cap / 2;
			}, 20_000, 'dnsmasq to fill half of a 2 KiB cap');
			expect((await rotateLog(paths.log, cap)).isRotated).toBe(true);
			await waitFor(async () => {
				process.kill(pid, 'SIGUSR1');
				return (await sizeOf(paths.log)) > 0;
			}, 20_000, 'dnsmasq to write again');
			expect(await firstBytes(paths.log)).toMatch(/^[A-Z][a-z]{2} [ \d]\d \d\d:/);
		} finally {
			await lab.cleanup();
		}
	}, 60_000);
});
