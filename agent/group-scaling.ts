/**
 * Scaling a group on load, pure: the controller's CPU samples of a group (one per round: the mean
 * over its warm running members) × its spec × the clock → grow, shrink, or hold, and why.
 *
 * What keeps it from flapping:
 * - a window: the average over `windowSeconds` of samples decides, never one round, and only once
 *   the window is full of samples taken since the group last changed (a scaling action, an
 *   operator's change, a new controller), so a decision never rests on the old size's load;
 * - warm-up: members younger than `warmupSeconds` are not sampled (a booting guest is busy);
 * - hysteresis: grow above the high mark; shrink only below the low mark (default half of it),
 *   over three windows, and only when the busiest sample of those, spread over the smaller group,
 *   would stay 10 % under the high mark;
 * - a cooldown after each scaling action.
 */
import type {ScaleOn} from '../source/protocol/index.js';

/** One round's measure: the mean CPU use (% of their vCPUs) over `members` warm running members. */
export type LoadSample = {readonly at: number; readonly cpuPercent: number; readonly members: number};

export type ScalingInput = {
	readonly scaleOn: ScaleOn;
	readonly size: number;
	readonly min: number;
	readonly max: number;
	readonly samples: readonly LoadSample[];
	readonly now: number;
	/** Since when the group has been as it is and watched: samples before this are not its own. */
	readonly since: number;
	/** When the last scaling action was (undefined: never). */
	readonly lastScaledAt: number | undefined;
};

export type ScalingDecision =
	| {readonly kind: 'hold'; readonly reason: string}
	| {readonly kind: 'scale'; readonly to: number; readonly cpuPercent: number; readonly members: number; readonly reason: string};

const round1 = (value: number) => Math.round(value * 10) / 10;

/** A shrink must leave the projected load this share under the high mark. */
export const SHRINK_TOLERANCE = 0.1;

/** A shrink needs the load low over this many windows (a grow needs one: adding room is the cheaper mistake). */
export const SHRINK_WINDOWS = 3;

export function decideScaling(input: ScalingInput): ScalingDecision {
	const {scaleOn, size, min, max, now} = input;
	const windowMs = scaleOn.windowSeconds * 1000;
	if (now - input.since < windowMs) {
		return {kind: 'hold', reason: `watching: the window of ${scaleOn.windowSeconds} s is not full yet`};
	}

	if (input.lastScaledAt !== undefined && now - input.lastScaledAt < scaleOn.cooldownSeconds * 1000) {
		return {kind: 'hold', reason: `cooling down after the last scaling action (${scaleOn.cooldownSeconds} s)`};
	}

	const window = input.samples.filter(sample => sample.at > now - windowMs && sample.at >= input.since);
	const last = window.at(-1);
	if (!last) {
		return {kind: 'hold', reason: 'no load measured: no warm running member'};
	}

	const cpuPercent = round1(window.reduce((sum, sample) => sum + sample.cpuPercent, 0) / window.length);
	const measured = `average CPU ${cpuPercent}% over ${scaleOn.windowSeconds} s across ${last.members} member${last.members === 1 ? '' : 's'}`;
	if (cpuPercent > scaleOn.highPercent) {
		if (size >= max) {
			return {kind: 'hold', reason: `${measured}, above ${scaleOn.highPercent}%, but the group is at its max ${max}`};
		}

		const to = Math.min(max, size + scaleOn.step);
		return {kind: 'scale', to, cpuPercent, members: last.members, reason: `${measured}, above ${scaleOn.highPercent}%: grow ${size} → ${to}`};
	}

	// Shrinking looks further back: the load must have stayed low over SHRINK_WINDOWS windows.
	const shrinkMs = SHRINK_WINDOWS * windowMs;
	const longWindow = input.samples.filter(sample => sample.at > now - shrinkMs && sample.at >= input.since);
	const longAverage = round1(longWindow.reduce((sum, sample) => sum + sample.cpuPercent, 0) / longWindow.length);
	if (cpuPercent < scaleOn.lowPercent && longAverage < scaleOn.lowPercent) {
		const longMeasured = `average CPU ${longAverage}% over ${SHRINK_WINDOWS * scaleOn.windowSeconds} s across ${last.members} member${last.members === 1 ? '' : 's'}`;
		if (size <= min) {
			return {kind: 'hold', reason: `${longMeasured}, below ${scaleOn.lowPercent}%, but the group is at its min ${min}`};
		}

		if (now - input.since < shrinkMs) {
			return {kind: 'hold', reason: `${measured}, below ${scaleOn.lowPercent}%: watching it stay there for ${SHRINK_WINDOWS * scaleOn.windowSeconds} s`};
		}

		const to = Math.max(min, size - scaleOn.step);
		// The same work on fewer members must stay clearly under the high mark, or the next window
		// grows the group back: judged from the busiest sample (not the average, which noise can pull
		// down), with a tolerance of 10 % of the mark.
		const peak = Math.max(...longWindow.map(sample => sample.cpuPercent));
		const projected = to === 0 ? 0 : round1((peak * size) / to);
		const ceiling = round1(scaleOn.highPercent * (1 - SHRINK_TOLERANCE));
		if (projected > ceiling) {
			return {kind: 'hold', reason: `${longMeasured}, below ${scaleOn.lowPercent}%, but on ${to} it would be ${projected}%, over ${ceiling}% (the high mark less ${SHRINK_TOLERANCE * 100}%)`};
		}

		return {kind: 'scale', to, cpuPercent: longAverage, members: last.members, reason: `${longMeasured}, below ${scaleOn.lowPercent}%: shrink ${size} → ${to}`};
	}

	return {kind: 'hold', reason: `${measured}, within ${scaleOn.lowPercent}% … ${scaleOn.highPercent}%`};
}

/**
 * A round's sample of a group: the mean CPU over members that run, are healthy, have a fresh load
 * and have run past the warm-up; undefined when none qualifies.
 */
export function sampleGroupLoad(
	members: ReadonlyArray<{readonly cpuPercent: number | undefined; readonly uptimeSeconds: number | null; readonly isCounted: boolean}>,
	options: {readonly now: number; readonly warmupSeconds: number},
): LoadSample | undefined {
	const warm = members.filter(member => member.isCounted && member.cpuPercent !== undefined && member.uptimeSeconds !== null && member.uptimeSeconds >= options.warmupSeconds);
	if (warm.length === 0) {
		return undefined;
	}

	return {at: options.now, cpuPercent: round1(warm.reduce((sum, member) => sum + member.cpuPercent!, 0) / warm.length), members: warm.length};
}
