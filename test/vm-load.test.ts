/** A VM's load from two samples of its QEMU process (table): CPU as a share of its vCPUs, RSS. */
import {describe, expect, it} from 'vitest';
import {vmLoad, type UsageSample} from '../agent/vm-load.js';

const sample = (at: number, cpuTicks: number, patch: Partial<UsageSample> = {}): UsageSample => ({at, startTime: 500, cpuTicks, rssBytes: 200 * 1024 * 1024, ...patch});

describe('vmLoad', () => {
	const cases = [
		{what: 'one vCPU fully busy for 2 s (200 ticks)', previous: sample(0, 1000), current: sample(2000, 1200), cpus: 1, expected: 100},
		{what: 'idle', previous: sample(0, 1000), current: sample(2000, 1000), cpus: 1, expected: 0},
		{what: 'one core busy of a 2-vCPU VM is 50 %', previous: sample(0, 0), current: sample(4000, 400), cpus: 2, expected: 50},
		{what: 'a little over 100 %: QEMU threads beside the vCPU', previous: sample(0, 0), current: sample(1000, 104), cpus: 1, expected: 104},
		{what: 'rounded to 0.1 %', previous: sample(0, 0), current: sample(3000, 1), cpus: 1, expected: 0.3},
	] as const;
	for (const {what, previous, current, cpus, expected} of cases) {
		it(what, () => {
			expect(vmLoad(previous, current, cpus)).toEqual({cpuPercent: expected, rssBytes: current.rssBytes, sampledAt: current.at});
		});
	}

	const none = [
		{what: 'no earlier sample', previous: undefined, current: sample(2000, 100)},
		{what: 'another process (restarted: another start time)', previous: sample(0, 5000), current: sample(2000, 10, {startTime: 900})},
		{what: 'no time between the samples', previous: sample(2000, 0), current: sample(2000, 10)},
		{what: 'CPU time going backwards', previous: sample(0, 100), current: sample(2000, 50)},
	] as const;
	for (const {what, previous, current} of none) {
		it(`nothing measured: ${what}`, () => {
			expect(vmLoad(previous, current, 1)).toBeUndefined();
		});
	}
});
