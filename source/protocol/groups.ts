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
 * A health check: `none` (the process and its host only), or `console:REGEX` (the guest prints a
 * line matching REGEX periodically; a member that printed none for the grace period is unhealthy).
 */
export type HealthCheck = {readonly kind: 'none'} | {readonly kind: 'console'; readonly pattern: string};

/** Parses `--health`: `none` or `console:REGEX` (a valid JavaScript regular expression). */
export function parseHealthCheck(text: string): {ok: true; value: HealthCheck} | {ok: false; error: string} {
	if (text === 'none') {
		return {ok: true, value: {kind: 'none'}};
	}

	const match = /^console:(.+)$/s.exec(text);
	if (!match?.[1]) {
		return {ok: false, error: `invalid health check ${JSON.stringify(text)}: expected none or console:REGEX`};
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
]);

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
		/** A new member's boot time, not counted against its console health check. */
		healthGraceSeconds: z.number().int().min(1).max(3600),
		/** How long a member's host may be silent before the member is replaced elsewhere. */
		hostGraceSeconds: z.number().int().min(1).max(3600),
	})
	.refine(spec => spec.min <= spec.size && spec.size <= spec.max, {error: 'size must be within min … max'});
export type GroupSpec = z.infer<typeof groupSpecSchema>;

/**
 * One record of the groups stream. The latest `group.put` per name wins, a `group.delete` is its
 * tombstone; `sync` records carry no state: a reader appends one and reads until it sees it, which
 * proves it has read everything written before (a stream over AMQP 0.9.1 has no "end" to wait for).
 */
export const groupRecordSchema = z.discriminatedUnion('kind', [
	z.strictObject({v: z.literal(PROTOCOL_VERSION), kind: z.literal('group.put'), ts: z.number().int().nonnegative(), spec: groupSpecSchema}),
	z.strictObject({v: z.literal(PROTOCOL_VERSION), kind: z.literal('group.delete'), ts: z.number().int().nonnegative(), name: groupNameSchema, uid: z.string()}),
	z.strictObject({v: z.literal(PROTOCOL_VERSION), kind: z.literal('sync'), ts: z.number().int().nonnegative(), id: z.string().min(1).max(64)}),
]);
export type GroupRecord = z.infer<typeof groupRecordSchema>;

/** A group as the stream says it is now: its spec, the stream offset that set it (its version), who set it. */
export type StoredGroup = {readonly spec: GroupSpec; readonly version: number; readonly by: string | null; readonly ts: number};

/** Folds one record (read at `offset`, published by `by`) into the groups by name: copy on write, same map when nothing changes. */
export function applyGroupRecord(groups: ReadonlyMap<string, StoredGroup>, record: GroupRecord, offset: number, by: string | null): ReadonlyMap<string, StoredGroup> {
	switch (record.kind) {
		case 'group.put': {
			const next = new Map(groups);
			next.set(record.spec.name, {spec: record.spec, version: offset, by, ts: record.ts});
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

/** What a member's client token says. */
export type MemberTag = {readonly group: string; readonly uid: string; readonly version: number; readonly slot: number; readonly gen: number};

const MEMBER_TOKEN_PATTERN = /^grp:([a-z][a-z\d-]{0,23}):([a-z\d]{8}):(\d{1,15}):(\d{1,4}):(\d{1,6})$/;

export function memberToken(tag: MemberTag): string {
	return `grp:${tag.group}:${tag.uid}:${tag.version}:${tag.slot}:${tag.gen}`;
}

export function parseMemberToken(token: string | null | undefined): MemberTag | undefined {
	const match = token ? MEMBER_TOKEN_PATTERN.exec(token) : null;
	if (!match) {
		return undefined;
	}

	return {group: match[1]!, uid: match[2]!, version: Number(match[3]), slot: Number(match[4]), gen: Number(match[5])};
}

/** The group a VM belongs to, if it is a member of one. */
export function groupOfVm(vm: Pick<Vm, 'clientToken'>): string | undefined {
	return parseMemberToken(vm.clientToken)?.group;
}
