/**
 * Capped logs on real files: rotation copies the tail to `<log>.1` and truncates the log under a
 * live O_APPEND writer (a shell appending as fast as it can, as QEMU and dnsmasq append), and the
 * last N bytes are read across the two files.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {readLogTail, rotatedPath, rotateLog} from '../agent/log-files.js';
import {waitFor} from './helpers/cloud.js';

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
});
