/**
 * Scaling on load, pure: the decision table, and a simulated controller (a round every 2 s, the
 * group's work spread over its members) that must grow to the load, shrink when it goes, and
 * never flap around the marks.
 */
import {describe, expect, it} from 'vitest';
import {decideScaling, sampleGroupLoad, type LoadSample, type ScalingInput} from '../agent/group-scaling.js';
import {parseScaleOn, scaleOnSchema, type ScaleOn} from '../source/protocol/index.js';

const SCALE: ScaleOn = {metric: 'cpu', highPercent: 70, lowPercent: 35, step: 1, windowSeconds: 10, cooldownSeconds: 20, warmupSeconds: 0};

/** Samples every 2 s over the last `seconds` up to `now`, each `cpu`. */
function steady(cpu: number, now: number, seconds = 10, members = 2): LoadSample[] {
	const samples: LoadSample[] = [];
	for (let at = now - seconds * 1000 + 2000; at <= now; at += 2000) {
		samples.push({at, cpuPercent: cpu, members});
	}

	return samples;
}

const input = (patch: Partial<ScalingInput>): ScalingInput => ({scaleOn: SCALE, size: 2, min: 1, max: 4, samples: steady(50, 100_000), now: 100_000, since: 0, lastScaledAt: undefined, ...patch});

describe('decideScaling', () => {
	it.each([
		['above the high mark: grow by a step', {samples: steady(85, 100_000)}, {kind: 'scale', to: 3, cpuPercent: 85}],
		['a step of 2, capped at max', {scaleOn: {...SCALE, step: 2}, size: 3, samples: steady(85, 100_000)}, {kind: 'scale', to: 4}],
		['above, at max: hold', {size: 4, samples: steady(95, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/at its max 4/)}],
		['between the marks: hold', {samples: steady(50, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/within 35% … 70%/)}],
		['exactly the high mark is not above it', {samples: steady(70, 100_000)}, {kind: 'hold'}],
		['below the low mark: shrink by a step', {size: 3, samples: steady(20, 100_000)}, {kind: 'scale', to: 2, cpuPercent: 20}],
		['below for one window only: hold until it stayed low for three', {size: 3, since: 85_000, samples: steady(20, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/watching it stay there for 30 s/)}],
		['low now but busy earlier in the three windows: hold', {size: 3, samples: [...steady(60, 90_000, 20, 3), ...steady(20, 100_000)]}, {kind: 'hold'}],
		['below, at min: hold', {size: 1, samples: steady(5, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/at its min 1/)}],
		['below, but on one member fewer it would cross the high mark: hold', {scaleOn: {...SCALE, lowPercent: 60}, size: 2, samples: steady(50, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/on 1 it would be 100%, over 63%/)}],
		['the window not full since the group last changed: hold', {since: 95_000, samples: steady(95, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/not full/)}],
		['cooling down: hold', {lastScaledAt: 85_000, samples: steady(95, 100_000)}, {kind: 'hold', reason: expect.stringMatching(/cooling down/)}],
		['cooldown over: act', {lastScaledAt: 80_000, since: 80_000, samples: steady(95, 100_000)}, {kind: 'scale', to: 3}],
		['no sample in the window (no warm member): hold', {samples: steady(95, 50_000)}, {kind: 'hold', reason: expect.stringMatching(/no load measured/)}],
		['samples from before the group changed do not count', {since: 90_000, samples: [...steady(95, 89_000), ...steady(50, 100_000, 10).filter(sample => sample.at >= 90_000)]}, {kind: 'hold'}],
	] as const)('%s', (_what, patch, expected) => {
		expect(decideScaling(input(patch as Partial<ScalingInput>))).toMatchObject(expected);
	});

	it('averages over the window: one busy round among idle ones does not grow the group', () => {
		const samples = steady(40, 100_000).map((sample, index) => (index === 2 ? {...sample, cpuPercent: 100} : sample));
		expect(decideScaling(input({samples}))).toMatchObject({kind: 'hold'});
	});

	it('says what it measured', () => {
		expect(decideScaling(input({samples: steady(84.24, 100_000, 10, 3), size: 3}))).toEqual({
			kind: 'scale',
			to: 4,
			cpuPercent: 84.2,
			members: 3,
			reason: 'average CPU 84.2% over 10 s across 3 members, above 70%: grow 3 → 4',
		});
	});
});

/**
 * A controller's life: every 2 s a sample of the group's CPU (the work `load(t)`, in % of one
 * member, spread over the members that are warm, each at most 100 %, plus a little noise), a
 * decision, and a scaling action carried out at once. Returns the sizes it went through.
 */
function simulate(options: {readonly scaleOn: ScaleOn; readonly start: number; readonly min: number; readonly max: number; readonly seconds: number; readonly load: (t: number) => number; readonly noise?: number}): number[] {
	let size = options.start;
	let since = 0;
	let lastScaledAt: number | undefined;
	let joinedAt: number[] = Array.from({length: size}, () => -1e9);
	const samples: LoadSample[] = [];
	const sizes = [size];
	let seed = 7;
	const random = () => {
		seed = (seed * 16_807) % 2_147_483_647;
		return seed / 2_147_483_647;
	};

	for (let now = 0; now <= options.seconds * 1000; now += 2000) {
		const work = options.load(now / 1000);
		const perMember = Math.min(100, work / size);
		const members = joinedAt.map(at => ({cpuPercent: Math.max(0, perMember + (random() - 0.5) * 2 * (options.noise ?? 0)), uptimeSeconds: (now - at) / 1000, isCounted: true}));
		const sample = sampleGroupLoad(members, {now, warmupSeconds: options.scaleOn.warmupSeconds});
		if (sample) {
			samples.push(sample);
		}

		const decision = decideScaling({scaleOn: options.scaleOn, size, min: options.min, max: options.max, samples, now, since, lastScaledAt});
		if (decision.kind === 'scale') {
			joinedAt = decision.to > size ? [...joinedAt, ...Array.from({length: decision.to - size}, () => now)] : joinedAt.slice(0, decision.to);
			size = decision.to;
			since = now;
			lastScaledAt = now;
			sizes.push(size);
		}
	}

	return sizes;
}

/** How often the direction of change reversed (grow then shrink, or shrink then grow). */
function reversals(sizes: readonly number[]): number {
	const steps = sizes.slice(1).map((size, index) => Math.sign(size - sizes[index]!));
	return steps.slice(1).filter((step, index) => step !== steps[index]).length;
}

describe('a simulated group under load', () => {
	const scaleOn: ScaleOn = {...SCALE, warmupSeconds: 6};

	it('a steady heavy load grows it step by step to max, then it stays', () => {
		expect(simulate({scaleOn, start: 1, min: 1, max: 3, seconds: 600, load: () => 400, noise: 5})).toEqual([1, 2, 3]);
	});

	it('it grows only as far as the load needs: 250 % of work settles on 4 members (62 % each)', () => {
		expect(simulate({scaleOn, start: 1, min: 1, max: 8, seconds: 600, load: () => 250, noise: 3})).toEqual([1, 2, 3, 4]);
	});

	it('the burn stops: it shrinks step by step to min and never grows back', () => {
		const sizes = simulate({scaleOn, start: 1, min: 1, max: 3, seconds: 900, load: t => (t < 200 ? 400 : 3), noise: 2});
		expect(sizes).toEqual([1, 2, 3, 2, 1]);
	});

	it.each([60, 66, 69, 70, 71, 74, 80, 105, 140, 141, 145])('a load hovering around a mark (%i % of one member, ±8 % noise) changes the size at most once per direction, never back and forth', work => {
		const sizes = simulate({scaleOn, start: 1, min: 1, max: 4, seconds: 1800, load: () => work, noise: 8});
		expect(reversals(sizes), JSON.stringify(sizes)).toBe(0);
		expect(sizes.length).toBeLessThanOrEqual(3);
	});

	it('a load that comes and goes slower than the cooldown is followed, with a pause of at least the cooldown between actions', () => {
		const sizes = simulate({scaleOn, start: 1, min: 1, max: 3, seconds: 1200, load: t => (Math.floor(t / 300) % 2 === 0 ? 400 : 3)});
		expect(sizes).toEqual([1, 2, 3, 2, 1, 2, 3, 2, 1]);
	});

	it('a member measured while it boots does not count: no growth from a booting member alone', () => {
		// Members are idle; a new one burns CPU while booting (first 6 s): with the warm-up it is never sampled.
		const sample = sampleGroupLoad(
			[
				{cpuPercent: 5, uptimeSeconds: 100, isCounted: true},
				{cpuPercent: 100, uptimeSeconds: 3, isCounted: true},
				{cpuPercent: 90, uptimeSeconds: 100, isCounted: false},
				{cpuPercent: undefined, uptimeSeconds: 100, isCounted: true},
			],
			{now: 1, warmupSeconds: 6},
		);
		expect(sample).toEqual({at: 1, cpuPercent: 5, members: 1});
		expect(sampleGroupLoad([{cpuPercent: 100, uptimeSeconds: 3, isCounted: true}], {now: 1, warmupSeconds: 6})).toBeUndefined();
	});
});

describe('--scale-on', () => {
	it.each([
		['cpu>70%', 70],
		['cpu>70', 70],
		['cpu > 12.5%', 12.5],
	])('%s', (text, high) => {
		expect(parseScaleOn(text)).toEqual({ok: true, value: {metric: 'cpu', highPercent: high}});
	});

	it.each(['cpu<70%', 'mem>70%', 'cpu>0%', 'cpu>', 'cpu>70%%', 'cpu>1e3'])('%s is refused', text => {
		expect(parseScaleOn(text)).toMatchObject({ok: false, error: expect.stringMatching(/expected cpu>PERCENT/)});
	});

	it('the low mark must be below the high mark', () => {
		expect(scaleOnSchema.safeParse({...SCALE, lowPercent: 70}).success).toBe(false);
		expect(scaleOnSchema.safeParse(SCALE).success).toBe(true);
	});
});
