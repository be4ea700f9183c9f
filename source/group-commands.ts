/**
 * `kloud-tui group …`: group specs read from and appended to the groups stream (the controller
 * acts on them), members found with a list round. Each takes a store client and a fleet client.
 */
import {randomBytes} from 'node:crypto';
import type {KloudClient} from './broker/client.js';
import {KloudRequestError} from './broker/client.js';
import type {GroupStoreClient} from './broker/group-store.js';
import {formatTable, formatVms, sortVms} from './format.js';
import {
	DEFAULT_SCALE_COOLDOWN_SECONDS,
	DEFAULT_SCALE_WARMUP_SECONDS,
	DEFAULT_SCALE_WINDOW_SECONDS,
	formatHealthCheck,
	formatScaleOn,
	groupSpecSchema,
	oneCopyPerVm,
	parseMemberToken,
	scaleOnSchema,
	type GroupSpec,
	type ScaleOn,
	type StoredGroup,
	type Vm,
} from './protocol/index.js';
import type {Output} from './commands.js';

export type GroupOptions = {readonly json: boolean; readonly timeoutMs: number};

/** What `group create` asks for; the uid is drawn here. */
export type GroupDraft = Omit<GroupSpec, 'uid'>;

/** Scaling fields given on the command line; the rest come from the group's current rule, or the defaults. */
export type ScaleOnPatch = Partial<Omit<ScaleOn, 'metric'>>;

/**
 * What `group update` changes: spec fields, and the scaling rule (`null`: off). Unset fields keep
 * their value; the size, unless given, is kept within the new min … max.
 */
export type GroupPatch = Partial<Omit<GroupSpec, 'uid' | 'name' | 'scaleOn'>> & {readonly scaleOn?: ScaleOnPatch | null};

/**
 * A scaling rule from `patch` over `current` (or the defaults: low mark half the high mark, step 1,
 * window 60 s, cooldown 120 s, warm-up 60 s). A new high mark without a low one takes half of it.
 */
export function mergeScaleOn(current: ScaleOn | undefined, patch: ScaleOnPatch): {ok: true; value: ScaleOn} | {ok: false; error: string} {
	const highPercent = patch.highPercent ?? current?.highPercent;
	if (highPercent === undefined) {
		return {ok: false, error: '--scale-low, --scale-step, --scale-window, --scale-cooldown and --scale-warmup go with --scale-on cpu>PERCENT'};
	}

	const merged = {
		metric: 'cpu',
		highPercent,
		lowPercent: patch.lowPercent ?? (patch.highPercent === undefined && current ? current.lowPercent : highPercent / 2),
		step: patch.step ?? current?.step ?? 1,
		windowSeconds: patch.windowSeconds ?? current?.windowSeconds ?? DEFAULT_SCALE_WINDOW_SECONDS,
		cooldownSeconds: patch.cooldownSeconds ?? current?.cooldownSeconds ?? DEFAULT_SCALE_COOLDOWN_SECONDS,
		warmupSeconds: patch.warmupSeconds ?? current?.warmupSeconds ?? DEFAULT_SCALE_WARMUP_SECONDS,
	};
	const parsed = scaleOnSchema.safeParse(merged);
	return parsed.success ? {ok: true, value: parsed.data} : {ok: false, error: `--scale-low ${merged.lowPercent} must be below the high mark ${highPercent}%`};
}

function newUid(): string {
	const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
	return [...randomBytes(8)].map(byte => alphabet[byte % alphabet.length]).join('');
}

async function existing(store: GroupStoreClient, name: string): Promise<StoredGroup> {
	const group = (await store.groups()).get(name);
	if (!group) {
		throw new KloudRequestError('bad_request', `no group ${name} (see \`kloud-tui group list\`)`);
	}

	return group;
}

export async function groupCreateCommand(store: GroupStoreClient, draft: GroupDraft, options: GroupOptions): Promise<Output> {
	if ((await store.groups()).has(draft.name)) {
		throw new KloudRequestError('bad_request', `group ${draft.name} exists already: scale it, or delete it first`);
	}

	const spec: GroupSpec = {...draft, uid: newUid()};
	await store.append({kind: 'group.put', spec});
	return options.json ? {stdout: JSON.stringify(spec)} : {stdout: `created group ${spec.name}: ${spec.size} × ${spec.image} (min ${spec.min}, max ${spec.max}); the controller starts its members`};
}

export async function groupScaleCommand(store: GroupStoreClient, name: string, size: number, options: GroupOptions): Promise<Output> {
	const {spec} = await existing(store, name);
	if (size < spec.min || size > spec.max) {
		throw new KloudRequestError('bad_request', `group ${name} may have ${spec.min} … ${spec.max} members, not ${size}`);
	}

	const next = {...spec, size};
	await store.append({kind: 'group.put', spec: next});
	return options.json ? {stdout: JSON.stringify(next)} : {stdout: `scaled group ${name} from ${spec.size} to ${size}`};
}

/**
 * Changes a group's spec. New members (replacements, growth) are started from the new spec;
 * members running now are kept as they are (no rolling replacement: replace one with `kloud-tui
 * delete VM`, and the group starts its successor from the new spec).
 */
export async function groupUpdateCommand(store: GroupStoreClient, name: string, patch: GroupPatch, options: GroupOptions): Promise<Output> {
	const group = await existing(store, name);
	const {spec} = group;
	const {scaleOn: scalePatch, ...fields} = patch;
	let scaleOn = spec.scaleOn;
	if (scalePatch === null) {
		scaleOn = undefined;
	} else if (scalePatch !== undefined) {
		const merged = mergeScaleOn(spec.scaleOn, scalePatch);
		if (!merged.ok) {
			throw new KloudRequestError('bad_request', `group ${name}: ${merged.error}`);
		}

		scaleOn = merged.value;
	}

	const min = fields.min ?? spec.min;
	const max = fields.max ?? spec.max;
	const size = fields.size ?? Math.min(max, Math.max(min, spec.size));
	const {scaleOn: _old, unhealthyAfterSeconds: oldUnhealthyAfter, ...rest} = spec;
	// Turning the health check off drops its unhealthy-after with it (it means nothing without one).
	const unhealthyAfterSeconds = fields.unhealthyAfterSeconds ?? (fields.health?.kind === 'none' ? undefined : oldUnhealthyAfter);
	const next = {...rest, ...fields, min, max, size, ...(scaleOn ? {scaleOn} : {}), ...(unhealthyAfterSeconds === undefined ? {} : {unhealthyAfterSeconds})};
	const parsed = groupSpecSchema.safeParse(next);
	if (!parsed.success) {
		throw new KloudRequestError('bad_request', `group ${name} cannot be updated so: ${parsed.error.issues[0]?.message ?? 'invalid spec'}`);
	}

	await store.append({kind: 'group.put', spec: parsed.data});
	const changed = Object.keys(next).filter(key => JSON.stringify((next as Record<string, unknown>)[key]) !== JSON.stringify((spec as Record<string, unknown>)[key]));
	if (spec.scaleOn && !scaleOn) {
		changed.push('scaleOn');
	}

	if (oldUnhealthyAfter !== undefined && unhealthyAfterSeconds === undefined) {
		changed.push('unhealthyAfterSeconds');
	}

	return options.json
		? {stdout: JSON.stringify(parsed.data)}
		: {
				stdout:
					changed.length === 0
						? `group ${name} unchanged`
						: `updated group ${name}: ${changed.join(', ')}${size === spec.size ? '' : ` (size ${spec.size} → ${size})`}; members running now are kept, new members get the new spec`,
			};
}

/** Between list rounds while `group delete --wait` waits for the members to go. */
const MEMBERS_POLL_MS = 500;

/**
 * Deletes the group's spec; the controller then deletes its members. With `wait`, returns once
 * no host lists a member any more (or fails at `timeoutMs`, naming those left: a member on a host
 * that is down goes when the host comes back).
 */
export async function groupDeleteCommand(store: GroupStoreClient, client: KloudClient, name: string, options: GroupOptions & {readonly wait: boolean}): Promise<Output> {
	const group = await existing(store, name);
	await store.append({kind: 'group.delete', name, uid: group.spec.uid});
	if (!options.wait) {
		return options.json ? {stdout: JSON.stringify({name, deleted: true})} : {stdout: `deleted group ${name}; the controller deletes its members`};
	}

	const deadline = Date.now() + options.timeoutMs;
	let members: Vm[] = [];
	let membersBefore: number | undefined;
	for (;;) {
		const remaining = deadline - Date.now();
		if (remaining <= 0) {
			throw new KloudRequestError('timeout', `deleted group ${name}, but ${members.length} of its members ${members.length === 1 ? 'is' : 'are'} still there after ${Math.round(options.timeoutMs / 1000)} s: ${members.map(vm => `${vm.id} on ${vm.host}`).join(', ')}`);
		}

		members = membersOf(group, (await fleetVms(client, Math.min(remaining, 2000))).vms);
		membersBefore ??= members.length;
		if (members.length === 0) {
			return options.json ? {stdout: JSON.stringify({name, deleted: true, membersDeleted: membersBefore})} : {stdout: `deleted group ${name} and its ${membersBefore} ${membersBefore === 1 ? 'member' : 'members'}`};
		}

		await new Promise(resolve => setTimeout(resolve, Math.min(MEMBERS_POLL_MS, Math.max(0, deadline - Date.now()))));
	}
}

/** A group's members in the fleet (those of its current incarnation), and how many run. */
export type GroupStatus = {
	readonly name: string;
	readonly image: string;
	readonly size: number;
	readonly min: number;
	readonly max: number;
	readonly health: string;
	/** `cpu>N%`, or `none`. */
	readonly scaleOn: string;
	/** The controller's last scaling action on load, and why. */
	readonly lastScaling?: StoredGroup['lastScaling'];
	readonly version: number;
	readonly by: string | null;
	readonly members: number;
	readonly running: number;
	readonly hosts: number;
};

/** The group's members among `vms` (those of its current incarnation). */
function membersOf(group: StoredGroup, vms: readonly Vm[]): Vm[] {
	return vms.filter(vm => {
		const tag = parseMemberToken(vm.clientToken);
		return tag?.group === group.spec.name && tag.uid === group.spec.uid;
	});
}

export function groupStatus(group: StoredGroup, vms: readonly Vm[]): GroupStatus & {readonly vms: Vm[]} {
	const members = membersOf(group, vms);
	const {spec} = group;
	return {
		name: spec.name,
		image: spec.image,
		size: spec.size,
		min: spec.min,
		max: spec.max,
		health: formatHealthCheck(spec.health),
		scaleOn: spec.scaleOn ? `cpu>${spec.scaleOn.highPercent}%` : 'none',
		...(group.lastScaling ? {lastScaling: group.lastScaling} : {}),
		version: group.version,
		by: group.by,
		members: members.length,
		running: members.filter(vm => vm.state === 'running').length,
		hosts: new Set(members.map(vm => vm.host)).size,
		vms: sortVms(members),
	};
}

async function fleetVms(client: KloudClient, timeoutMs: number): Promise<{vms: Vm[]; missing: readonly string[]}> {
	const round = await client.list({timeoutMs});
	return {vms: oneCopyPerVm(round.replies.flatMap(snapshot => snapshot.vms)), missing: round.missing};
}

export async function groupListCommand(store: GroupStoreClient, client: KloudClient, options: GroupOptions): Promise<Output> {
	const groups = [...(await store.groups()).values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name));
	const {vms, missing} = await fleetVms(client, options.timeoutMs);
	const rows = groups.map(group => {
		const {vms: _members, ...status} = groupStatus(group, vms);
		return status;
	});
	if (options.json) {
		return {stdout: JSON.stringify(rows)};
	}

	return {
		stdout:
			rows.length === 0
				? 'No groups.'
				: formatTable(
						['NAME', 'IMAGE', 'DESIRED', 'RUNNING', 'MEMBERS', 'HOSTS', 'MIN', 'MAX', 'HEALTH', 'SCALE-ON'],
						rows.map(row => [row.name, row.image, String(row.size), String(row.running), String(row.members), String(row.hosts), String(row.min), String(row.max), row.health, row.scaleOn]),
					),
		...(missing.length > 0 ? {stderr: `warning: no answer from ${missing.join(', ')}`} : {}),
	};
}

export async function groupShowCommand(store: GroupStoreClient, client: KloudClient, name: string, options: GroupOptions): Promise<Output> {
	const group = await existing(store, name);
	const {vms} = await fleetVms(client, options.timeoutMs);
	const status = groupStatus(group, vms);
	if (options.json) {
		return {stdout: JSON.stringify({...status, spec: group.spec})};
	}

	const {spec} = group;
	return {
		stdout: [
			`group ${spec.name} (version ${group.version}${group.by ? `, by ${group.by}` : ''})`,
			`  image ${spec.image}, ${spec.memoryMb ?? 'default'} MB, ${spec.cpus ?? 'default'} cpu, network ${spec.network ?? 'default'}, restart ${spec.restart ?? 'on-failure'}`,
			`  desired ${spec.size} (min ${spec.min}, max ${spec.max}), running ${status.running} of ${status.members} members on ${status.hosts} hosts`,
			`  health ${status.health} (boot grace ${spec.healthGraceSeconds} s${spec.health.kind === 'none' ? '' : `, unhealthy after ${spec.unhealthyAfterSeconds ?? spec.healthGraceSeconds} s without a pass`}), host grace ${spec.hostGraceSeconds} s`,
			`  scale on ${spec.scaleOn ? formatScaleOn(spec.scaleOn) : 'none'}`,
			...(group.lastScaling ? [`  last scaling ${new Date(group.lastScaling.at).toISOString().replace('T', ' ').slice(0, 19)} UTC: ${group.lastScaling.from} → ${group.lastScaling.to}, ${group.lastScaling.reason}`] : []),
			'',
			formatVms(status.vms),
		].join('\n'),
	};
}
