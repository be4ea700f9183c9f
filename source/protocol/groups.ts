/**
 * Groups (README, "Groups"): a named set of like VMs that the controller keeps at a size, replacing
 * unhealthy members. Pure: the spec schema, the records of the groups stream (`<ns>.groups`), and
 * the member token that tags a VM with its group, slot and generation.
 *
 * A member is an ordinary VM whose client token is `grp:<name>:<uid>:<version>:<slot>:<gen>`: the
 * tag that lists it under its group, and the start's idempotency key, so a controller that takes
 * over mid-start sends the very same start again and gets the same VM, never a second one.
 */
import {z} from 'zod';
import {imageNameSchema, networkModeSchema, restartPolicySchema, sshKeySchema, userDataSchema, MAX_SSH_KEYS, type Vm} from './messages.js';
import {PROTOCOL_VERSION} from './version.js';

/** Most members one group may have. */
export const MAX_GROUP_SIZE = 100;

/** Group names: short (they go into every member's client token, at most 64 characters). */
export const GROUP_NAME_PATTERN = /^[a-z][a-z\d-]{0,23}$/;

export const groupNameSchema = z
	.string()
	.regex(GROUP_NAME_PATTERN, {error: issue => `invalid group name ${JSON.stringify(issue.input)}: use 1-24 lowercase letters, digits or '-', starting with a letter`});

/** How long a member may take to boot before a console health check counts against it, by default. */
export const DEFAULT_HEALTH_GRACE_SECONDS = 90;

/** How long a host may be silent before its members count as lost and are replaced elsewhere, by default. */
export const DEFAULT_HOST_GRACE_SECONDS = 15;

/**
 * A health check: `none` (the process and its host only), `console:REGEX` (the guest prints a
 * line matching REGEX periodically; a member that printed none for the grace period is unhealthy),
 * or `tcp:PORT` (the member's host connects to its address and PORT; a member that took no
 * connection for the grace period is unhealthy).
 */
export type HealthCheck = {readonly kind: 'none'} | {readonly kind: 'console'; readonly pattern: string} | {readonly kind: 'tcp'; readonly port: number};

/** Parses `--health`: `none`, `console:REGEX` (a valid JavaScript regular expression) or `tcp:PORT`. */
export function parseHealthCheck(text: string): {ok: true; value: HealthCheck} | {ok: false; error: string} {
	if (text === 'none') {
		return {ok: true, value: {kind: 'none'}};
	}

	const tcp = /^tcp:(.*)$/.exec(text);
	if (tcp) {
		const port = Number(tcp[1]);
		return /^\d{1,5}$/.test(tcp[1]!) && port >= 1 && port <= 65_535
			? {ok: true, value: {kind: 'tcp', port}}
			: {ok: false, error: `invalid health check ${JSON.stringify(text)}: tcp:PORT needs a port from 1 to 65535`};
	}

	const match = /^console:(.+)$/s.exec(text);
	if (!match?.[1]) {
		return {ok: false, error: `invalid health check ${JSON.stringify(text)}: expected none, console:REGEX or tcp:PORT`};
	}

	try {
		new RegExp(match[1]);
	} catch (error) {
		return {ok: false, error: `invalid health check ${JSON.stringify(text)}: ${(error as Error).message}`};
	}

	return {ok: true, value: {kind: 'console', pattern: match[1]}};
}

export const healthCheckSchema = z.union([
	z.strictObject({kind: z.literal('none')}),
	z.strictObject({
		kind: z.literal('console'),
		pattern: z
			.string()
			.min(1)
			.max(256)
			.refine(pattern => parseHealthCheck(`console:${pattern}`).ok, {error: 'invalid regular expression'}),
	}),
	z.strictObject({kind: z.literal('tcp'), port: z.number().int().min(1).max(65_535)}),
]);

/** How a health check reads on the command line (`none`, `console:REGEX`, `tcp:PORT`). */
export function formatHealthCheck(check: HealthCheck): string {
	switch (check.kind) {
		case 'none': {
			return 'none';
		}

		case 'console': {
			return `console:${check.pattern}`;
		}

		case 'tcp': {
			return `tcp:${check.port}`;
		}
	}
}

/** Scaling on load's defaults: the average is taken over this window, … */
export const DEFAULT_SCALE_WINDOW_SECONDS = 60;
/** … at least this long after the last scaling action, … */
export const DEFAULT_SCALE_COOLDOWN_SECONDS = 120;
/** … over members that have run at least this long (a booting guest's CPU says nothing of the load). */
export const DEFAULT_SCALE_WARMUP_SECONDS = 60;

/**
 * Scaling on load (`--scale-on cpu>70%`): the average CPU use of the group's running members over
 * a window (each member's CPU as a share of its vCPUs) above `highPercent` grows the group by
 * `step`, up to its max; below `lowPercent` (default half the high mark) shrinks it by `step`,
 * down to its min, unless the load spread over fewer members would cross the high mark again.
 */
export const scaleOnSchema = z
	.strictObject({
		metric: z.literal('cpu'),
		highPercent: z.number().gt(0).max(1000),
		lowPercent: z.number().min(0).max(1000),
		step: z.number().int().min(1).max(MAX_GROUP_SIZE),
		windowSeconds: z.number().int().min(1).max(3600),
		cooldownSeconds: z.number().int().min(0).max(24 * 3600),
		warmupSeconds: z.number().int().min(0).max(3600),
	})
	.refine(scale => scale.lowPercent < scale.highPercent, {error: 'the low mark must be below the high mark'});
export type ScaleOn = z.infer<typeof scaleOnSchema>;

/** Parses `--scale-on`: `cpu>PERCENT` (`%` optional), e.g. `cpu>70%`; the high mark only (the rest has defaults). */
export function parseScaleOn(text: string): {ok: true; value: {readonly metric: 'cpu'; readonly highPercent: number}} | {ok: false; error: string} {
	const match = /^cpu\s*>\s*(\d+(?:\.\d+)?)\s*%?$/.exec(text.trim());
	const high = Number(match?.[1]);
	if (!match || !(high > 0 && high <= 1000)) {
		return {ok: false, error: `invalid --scale-on ${JSON.stringify(text)}: expected cpu>PERCENT, e.g. cpu>70%`};
	}

	return {ok: true, value: {metric: 'cpu', highPercent: high}};
}

/** How a scaling rule reads (`cpu>70% (shrink below 35%, step 1, window 60 s, cooldown 120 s, warm-up 60 s)`). */
export function formatScaleOn(scale: ScaleOn): string {
	return `cpu>${scale.highPercent}% (shrink below ${scale.lowPercent}%, step ${scale.step}, window ${scale.windowSeconds} s, cooldown ${scale.cooldownSeconds} s, warm-up ${scale.warmupSeconds} s)`;
}

/** The shortest `unhealthyAfterSeconds`: over three checks (every 3 s), so one slow round never fails a member. */
export const MIN_UNHEALTHY_AFTER_SECONDS = 10;

export const groupSpecSchema = z
	.strictObject({
		name: groupNameSchema,
		/** Random at creation: a group deleted and made again under the same name never claims the old one's members. */
		uid: z.string().regex(/^[a-z\d]{8}$/),
		image: imageNameSchema,
		size: z.number().int().min(0).max(MAX_GROUP_SIZE),
		min: z.number().int().min(0).max(MAX_GROUP_SIZE),
		max: z.number().int().min(0).max(MAX_GROUP_SIZE),
		memoryMb: z.number().int().min(16).max(1024 * 1024).optional(),
		cpus: z.number().int().min(1).max(256).optional(),
		network: networkModeSchema.optional(),
		userData: userDataSchema.optional(),
		sshKeys: z.array(sshKeySchema).max(MAX_SSH_KEYS).optional(),
		/** The members' restart policy (omitted: the agent's default, `on-failure`). */
		restart: restartPolicySchema.optional(),
		health: healthCheckSchema,
		/** A new member's boot time: until its health check first passes, it fails only after this long. */
		healthGraceSeconds: z.number().int().min(1).max(3600),
		/**
		 * Once its check has passed, how long a member may go without a pass before it is replaced
		 * (absent: the health grace). At least MIN_UNHEALTHY_AFTER_SECONDS: checks run every 3 s.
		 */
		unhealthyAfterSeconds: z.number().int().min(MIN_UNHEALTHY_AFTER_SECONDS).max(3600).optional(),
		/** How long a member's host may be silent before the member is replaced elsewhere. */
		hostGraceSeconds: z.number().int().min(1).max(3600),
		/** Scaling on load (absent: the size changes only when an operator says). */
		scaleOn: scaleOnSchema.optional(),
	})
	.refine(spec => spec.min <= spec.size && spec.size <= spec.max, {error: 'size must be within min … max'})
	.refine(spec => spec.unhealthyAfterSeconds === undefined || spec.health.kind !== 'none', {
		error: 'unhealthy-after needs a health check (--health console:REGEX or tcp:PORT)',
	})
	.refine(spec => spec.health.kind !== 'tcp' || spec.network === 'private' || spec.network === 'public', {
		error: 'a tcp:PORT health check needs network private or public (the member\'s host connects to its address)',
	});
export type GroupSpec = z.infer<typeof groupSpecSchema>;

/** What the controller's last scaling action did, and why: the load it measured. */
export const scalingActionSchema = z.strictObject({
	from: z.number().int().min(0).max(MAX_GROUP_SIZE),
	to: z.number().int().min(0).max(MAX_GROUP_SIZE),
	/** The average CPU use measured, and over how many members (at the last sample) and seconds. */
	cpuPercent: z.number().nonnegative(),
	members: z.number().int().nonnegative(),
	windowSeconds: z.number().int().nonnegative(),
	reason: z.string().min(1).max(512),
});
export type ScalingAction = z.infer<typeof scalingActionSchema>;

/**
 * One record of the groups stream. The latest `group.put` per name wins, a `group.delete` is its
 * tombstone; `sync` records carry no state: a reader appends one and reads until it sees it, which
 * proves it has read everything written before (a stream over AMQP 0.9.1 has no "end" to wait for).
 */
export const groupRecordSchema = z.discriminatedUnion('kind', [
	z.strictObject({v: z.literal(PROTOCOL_VERSION), kind: z.literal('group.put'), ts: z.number().int().nonnegative(), spec: groupSpecSchema}),
	z.strictObject({v: z.literal(PROTOCOL_VERSION), kind: z.literal('group.delete'), ts: z.number().int().nonnegative(), name: groupNameSchema, uid: z.string()}),
	z.strictObject({v: z.literal(PROTOCOL_VERSION), kind: z.literal('sync'), ts: z.number().int().nonnegative(), id: z.string().min(1).max(64)}),
	/**
	 * The controller scaled a group on load: its size becomes `action.to`, but only if the group is
	 * still at version `basedOn` (the spec the decision was made on): an operator's change written
	 * meanwhile wins, for every reader alike (a compare-and-set on an append-only log).
	 */
	z.strictObject({
		v: z.literal(PROTOCOL_VERSION),
		kind: z.literal('group.scaled'),
		ts: z.number().int().nonnegative(),
		name: groupNameSchema,
		uid: z.string(),
		basedOn: z.number().int().nonnegative(),
		action: scalingActionSchema,
	}),
]);
export type GroupRecord = z.infer<typeof groupRecordSchema>;

/**
 * A group as the stream says it is now: its spec, the stream offset that set it (its version), who
 * set it and when, and the last scaling action on load (kept across later `group.put`s of the same group).
 */
export type StoredGroup = {
	readonly spec: GroupSpec;
	readonly version: number;
	readonly by: string | null;
	readonly ts: number;
	readonly lastScaling?: ScalingAction & {readonly at: number};
};

/** Folds one record (read at `offset`, published by `by`) into the groups by name: copy on write, same map when nothing changes. */
export function applyGroupRecord(groups: ReadonlyMap<string, StoredGroup>, record: GroupRecord, offset: number, by: string | null): ReadonlyMap<string, StoredGroup> {
	switch (record.kind) {
		case 'group.put': {
			const previous = groups.get(record.spec.name);
			const next = new Map(groups);
			const lastScaling = previous?.spec.uid === record.spec.uid ? previous.lastScaling : undefined;
			next.set(record.spec.name, {spec: record.spec, version: offset, by, ts: record.ts, ...(lastScaling ? {lastScaling} : {})});
			return next;
		}

		case 'group.scaled': {
			const current = groups.get(record.name);
			const {action} = record;
			if (!current || current.spec.uid !== record.uid || current.version !== record.basedOn || current.spec.size !== action.from || action.to < current.spec.min || action.to > current.spec.max) {
				return groups;
			}

			const next = new Map(groups);
			next.set(record.name, {spec: {...current.spec, size: action.to}, version: offset, by, ts: record.ts, lastScaling: {...action, at: record.ts}});
			return next;
		}

		case 'group.delete': {
			const current = groups.get(record.name);
			if (!current || current.spec.uid !== record.uid) {
				return groups;
			}

			const next = new Map(groups);
			next.delete(record.name);
			return next;
		}

		case 'sync': {
			return groups;
		}
	}
}

export {groupOfVm, memberToken, parseMemberToken, type MemberTag} from './member-token.js';
