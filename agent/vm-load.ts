/**
 * A VM's load from two samples of its QEMU process, pure: CPU time (`utime` + `stime` from
 * `/proc/<pid>/stat`) spent between the samples as a share of the VM's vCPUs, and the later
 * sample's resident memory. The agent takes the samples (`Runtime.processUsage`) on a timer.
 */
import type {VmLoad} from '../source/protocol/index.js';

/**
 * Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`, USER_HZ): 100 on every
 * Linux architecture kloud runs on (it is part of the kernel's user-space ABI, not its HZ).
 */
export const CLOCK_TICKS_PER_SECOND = 100;

/** One reading of a process. */
export type UsageSample = {
	/** Epoch milliseconds. */
	readonly at: number;
	/** The process's start time (ticks after boot): two samples of different processes never pair. */
	readonly startTime: number;
	readonly cpuTicks: number;
	readonly rssBytes: number;
};

/**
 * The load between `previous` and `current` for a VM of `cpus` vCPUs (100 % = all of them busy),
 * rounded to 0.1 %; undefined without an earlier sample of the same process, or when no time passed.
 */
export function vmLoad(previous: UsageSample | undefined, current: UsageSample, cpus: number): VmLoad | undefined {
	if (!previous || previous.startTime !== current.startTime || current.at <= previous.at || current.cpuTicks < previous.cpuTicks) {
		return undefined;
	}

	const cpuSeconds = (current.cpuTicks - previous.cpuTicks) / CLOCK_TICKS_PER_SECOND;
	const wallSeconds = (current.at - previous.at) / 1000;
	const cpuPercent = Math.round((1000 * cpuSeconds) / wallSeconds / Math.max(1, cpus)) / 10;
	return {cpuPercent, rssBytes: current.rssBytes, sampledAt: current.at};
}
