/**
 * Pure parsing of `/proc/<pid>/stat` (the process's name, state, CPU time and start time) and of
 * the resident memory in `/proc/<pid>/status`. The start time
 * (field 22, clock ticks since boot) never changes for a process and differs for a later process
 * given the same pid, so pid + start time names one process for good.
 */

/** What the agent reads from `/proc/<pid>/stat`. */
export type ProcStat = {
	/** The kernel's name for the process (field 2, ≤ 15 bytes, may hold spaces and parentheses). */
	readonly comm: string;
	/** One letter: R, S, D, Z (zombie), X (dead), T, … (field 3). */
	readonly state: string;
	/** Clock ticks after boot when the process started (field 22). */
	readonly startTime: number;
	/** Clock ticks the process spent in user and kernel mode (fields 14 and 15, `utime` + `stime`). */
	readonly cpuTicks: number;
};

/** Parses one `/proc/<pid>/stat` line; undefined when it is not one. */
export function parseProcStat(text: string): ProcStat | undefined {
	// The comm field is in parentheses and may itself hold ") ": the fields go on after the last ")".
	const open = text.indexOf('(');
	const close = text.lastIndexOf(')');
	if (open === -1 || close < open) {
		return undefined;
	}

	// Fields 3 onwards; field 22 is the 20th of them.
	const rest = text.slice(close + 2).trim().split(' ');
	const state = rest[0];
	const startTime = Number(rest[19]);
	const utime = Number(rest[11]);
	const stime = Number(rest[12]);
	if (state === undefined || !/^[A-Za-z]$/.test(state) || ![startTime, utime, stime].every(value => Number.isSafeInteger(value) && value >= 0)) {
		return undefined;
	}

	return {comm: text.slice(open + 1, close), state, startTime, cpuTicks: utime + stime};
}

/** The resident set size in bytes from `/proc/<pid>/status` (`VmRSS:  12345 kB`); undefined when absent (a zombie, a kernel thread). */
export function parseRssBytes(status: string): number | undefined {
	const match = /^VmRSS:\s+(\d+)\s+kB\s*$/m.exec(status);
	return match ? Number(match[1]) * 1024 : undefined;
}
