/**
 * A process is its pid and its start time: `/proc/<pid>/stat` parsed (table), and the runtime
 * neither signals nor counts alive a pid whose start time is not the one recorded (a real child).
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {readFile} from 'node:fs/promises';
import {afterEach, describe, expect, it} from 'vitest';
import {parseProcStat, parseRssBytes} from '../agent/proc-stat.js';
import {createRuntime} from '../agent/runtime.js';

const FIELDS_4_TO_21 = '1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0';
const TAIL = '3133440 378 18446744073709551615 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0';

describe('parseProcStat', () => {
	const cases = [
		{what: 'a plain process', text: `42 (sleep) S ${FIELDS_4_TO_21} 104928 ${TAIL}\n`, expected: {comm: 'sleep', state: 'S', startTime: 104_928, cpuTicks: 0}},
		{what: 'a VM: comm is its id', text: `7 (vm-abcdefgh) R ${FIELDS_4_TO_21} 5 ${TAIL}`, expected: {comm: 'vm-abcdefgh', state: 'R', startTime: 5, cpuTicks: 0}},
		{what: 'a comm holding ") " and spaces', text: `7 (a) S (b c) Z ${FIELDS_4_TO_21} 99 ${TAIL}`, expected: {comm: 'a) S (b c', state: 'Z', startTime: 99, cpuTicks: 0}},
		{what: 'a comm holding "(("', text: `7 ((x) X ${FIELDS_4_TO_21} 1 ${TAIL}`, expected: {comm: '(x', state: 'X', startTime: 1, cpuTicks: 0}},
		{
			what: 'CPU time: utime (14) + stime (15)',
			text: `7 (vm-abcdefgh) R 1 1 1 0 -1 4194560 100 0 0 0 1234 56 7 8 20 0 1 0 42 ${TAIL}`,
			expected: {comm: 'vm-abcdefgh', state: 'R', startTime: 42, cpuTicks: 1290},
		},
		{what: 'a CPU time that is not a number', text: `7 (sleep) S 1 1 1 0 -1 4194560 100 0 0 0 x 0 0 0 20 0 1 0 1 ${TAIL}`, expected: undefined},
		{what: 'empty', text: '', expected: undefined},
		{what: 'no parentheses', text: `7 sleep S ${FIELDS_4_TO_21} 1 ${TAIL}`, expected: undefined},
		{what: 'cut short before field 22', text: '7 (sleep) S 1 1 1', expected: undefined},
		{what: 'a start time that is not a number', text: `7 (sleep) S ${FIELDS_4_TO_21} x ${TAIL}`, expected: undefined},
	] as const;
	for (const {what, text, expected} of cases) {
		it(what, () => {
			expect(parseProcStat(text)).toEqual(expected);
		});
	}

	it('reads this process', async () => {
		const stat = parseProcStat(await readFile('/proc/self/stat', 'utf8'));
		expect(stat?.state).toMatch(/^[RS]$/);
		expect(stat?.startTime).toBeGreaterThan(0);
	});
});

describe('parseRssBytes', () => {
	const cases = [
		{what: 'a QEMU status', text: 'Name:\tqemu-system-x86\nVmPeak:\t 1000 kB\nVmRSS:\t  215040 kB\nRssAnon:\t 1 kB\n', expected: 215_040 * 1024},
		{what: 'a zombie: no VmRSS', text: 'Name:\tx\nState:\tZ (zombie)\n', expected: undefined},
		{what: 'not kB', text: 'VmRSS:\t 12 MB\n', expected: undefined},
		{what: 'empty', text: '', expected: undefined},
	] as const;
	for (const {what, text, expected} of cases) {
		it(what, () => {
			expect(parseRssBytes(text)).toBe(expected);
		});
	}

	it('reads this process', async () => {
		expect(parseRssBytes(await readFile('/proc/self/status', 'utf8'))).toBeGreaterThan(10 * 1024 * 1024);
	});
});

describe('the runtime signals a process, not a pid', () => {
	const runtime = createRuntime();
	let child: ChildProcess | undefined;
	afterEach(() => {
		child?.kill('SIGKILL');
		child = undefined;
	});

	async function startSleeper(): Promise<{pid: number; startTime: number; exited: Promise<unknown>}> {
		child = spawn('sleep', ['30'], {stdio: 'ignore'});
		const exited = new Promise(resolve => child!.once('exit', resolve));
		const stat = parseProcStat(await readFile(`/proc/${child.pid}/stat`, 'utf8'));
		expect(stat).toBeDefined();
		return {pid: child.pid!, startTime: stat!.startTime, exited};
	}

	it('a pid whose start time is not the recorded one is neither alive nor signalled', async () => {
		const sleeper = await startSleeper();
		// What the agent would hold for an earlier process that had this pid.
		const earlier = {pid: sleeper.pid, startTime: sleeper.startTime - 1};
		expect(runtime.isAlive(earlier)).toBe(false);
		expect(runtime.signal(earlier, 'SIGKILL')).toBe(false);
		// The process itself was left alone: it still answers as itself, and dies only when it is meant.
		expect(runtime.isAlive({pid: sleeper.pid, startTime: sleeper.startTime})).toBe(true);
		expect(child!.exitCode).toBeNull();
		expect(runtime.signal({pid: sleeper.pid, startTime: sleeper.startTime}, 'SIGKILL')).toBe(true);
		await sleeper.exited;
		expect(child!.signalCode).toBe('SIGKILL');
	});

	it('a process gone (and reaped) is not alive and not signalled, by pid and start time', async () => {
		const sleeper = await startSleeper();
		child!.kill('SIGKILL');
		await sleeper.exited;
		expect(runtime.isAlive({pid: sleeper.pid, startTime: sleeper.startTime})).toBe(false);
		expect(runtime.signal({pid: sleeper.pid, startTime: sleeper.startTime}, 'SIGTERM')).toBe(false);
	});

	it('a pid without a start time works as before', async () => {
		const sleeper = await startSleeper();
		expect(runtime.isAlive(sleeper.pid)).toBe(true);
		expect(runtime.signal(sleeper.pid, 'SIGTERM')).toBe(true);
		await sleeper.exited;
		expect(child!.signalCode).toBe('SIGTERM');
	});
});
