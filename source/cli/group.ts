/**
 * `kloud-tui group SUBCOMMAND …`: its arguments checked into a plan before anything touches the
 * broker (bad usage exits 2), then run against the groups stream and the fleet.
 */
import type {KloudClient} from '../broker/client.js';
import {GroupStoreClient} from '../broker/group-store.js';
import {groupCreateCommand, groupDeleteCommand, groupListCommand, groupScaleCommand, groupShowCommand, groupUpdateCommand, mergeScaleOn, type GroupDraft, type GroupPatch, type ScaleOnPatch} from '../group-commands.js';
import type {Output} from '../commands.js';
import {
	DEFAULT_HEALTH_GRACE_SECONDS,
	DEFAULT_HOST_GRACE_SECONDS,
	groupNameSchema,
	groupSpecSchema,
	imageNameSchema,
	MAX_GROUP_SIZE,
	MIN_UNHEALTHY_AFTER_SECONDS,
	networkModeSchema,
	parseHealthCheck,
	parseScaleOn,
	restartPolicySchema,
	type Topology,
} from '../protocol/index.js';
import type {TlsOptions} from '../broker/connection.js';
import {UsageError, type CliFlags} from './args.js';

export type GroupPlan =
	| {readonly kind: 'create'; readonly draft: GroupDraft}
	| {readonly kind: 'list'}
	| {readonly kind: 'show'; readonly name: string}
	| {readonly kind: 'delete'; readonly name: string; readonly wait: boolean}
	| {readonly kind: 'scale'; readonly name: string; readonly size: number}
	| {readonly kind: 'update'; readonly name: string; readonly patch: GroupPatch};

/** Everything of a start that `group create` takes from files (read by the caller, as `start` does). */
export type GroupFiles = {readonly userData?: string; readonly sshKeys?: readonly string[]};

function check<T>(schema: {safeParse(value: unknown): {success: true; data: T} | {success: false; error: {issues: Array<{message: string}>}}}, value: unknown): T {
	const parsed = schema.safeParse(value);
	if (!parsed.success) {
		throw new UsageError(parsed.error.issues[0]?.message ?? 'invalid value');
	}

	return parsed.data;
}

function count(name: string, value: number | undefined, min: number): number | undefined {
	if (value !== undefined && (!Number.isInteger(value) || value < min || value > MAX_GROUP_SIZE)) {
		throw new UsageError(`invalid --${name} ${value}: must be a whole number from ${min} to ${MAX_GROUP_SIZE}`);
	}

	return value;
}

function seconds(name: string, value: number | undefined, fallback: number, options: {readonly min?: number} = {}): number {
	const min = options.min ?? 1;
	if (value !== undefined && (!Number.isInteger(value) || value < min || value > 3600)) {
		throw new UsageError(`invalid --${name} ${value}: a whole number of seconds from ${min} to 3600`);
	}

	return value ?? fallback;
}

function percent(name: string, value: number | undefined): number | undefined {
	if (value !== undefined && !(value >= 0 && value <= 1000)) {
		throw new UsageError(`invalid --${name} ${value}: a percentage from 0 to 1000`);
	}

	return value;
}

/** The spec fields given on the command line (those `create` and `update` share), checked. */
function specFields(flags: CliFlags, files: GroupFiles): Partial<GroupDraft> {
	let health;
	if (flags.health !== undefined) {
		const parsed = parseHealthCheck(flags.health);
		if (!parsed.ok) {
			throw new UsageError(parsed.error);
		}

		health = parsed.value;
	}

	const min = count('min', flags.min, 0);
	const max = count('max', flags.max, 0);
	return {
		...(min === undefined ? {} : {min}),
		...(max === undefined ? {} : {max}),
		...(health === undefined ? {} : {health}),
		...(flags.healthGrace === undefined ? {} : {healthGraceSeconds: seconds('health-grace', flags.healthGrace, 0)}),
		...(flags.unhealthyAfter === undefined ? {} : {unhealthyAfterSeconds: seconds('unhealthy-after', flags.unhealthyAfter, 0, {min: MIN_UNHEALTHY_AFTER_SECONDS})}),
		...(flags.hostGrace === undefined ? {} : {hostGraceSeconds: seconds('host-grace', flags.hostGrace, 0)}),
		...(flags.memory === undefined ? {} : {memoryMb: flags.memory}),
		...(flags.cpus === undefined ? {} : {cpus: flags.cpus}),
		...(flags.network === undefined ? {} : {network: check(networkModeSchema, flags.network)}),
		...(flags.restart === undefined ? {} : {restart: check(restartPolicySchema, flags.restart)}),
		...(files.userData === undefined ? {} : {userData: files.userData}),
		...(files.sshKeys === undefined || files.sshKeys.length === 0 ? {} : {sshKeys: [...files.sshKeys]}),
	};
}

function hasScaleTuning(flags: CliFlags): boolean {
	return [flags.scaleLow, flags.scaleStep, flags.scaleWindow, flags.scaleCooldown, flags.scaleWarmup].some(value => value !== undefined);
}

/** The scaling fields given (`--scale-on cpu>N%` and its tuning flags), each checked; undefined when none is. */
function scalePatch(flags: CliFlags): ScaleOnPatch | undefined {
	if (flags.scaleOn === undefined && !hasScaleTuning(flags)) {
		return undefined;
	}

	let highPercent;
	if (flags.scaleOn !== undefined) {
		const parsed = parseScaleOn(flags.scaleOn);
		if (!parsed.ok) {
			throw new UsageError(parsed.error);
		}

		highPercent = parsed.value.highPercent;
	}

	const timing = (name: string, value: number | undefined, min: number, max: number) => {
		if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
			throw new UsageError(`invalid --${name} ${value}: a whole number of seconds from ${min} to ${max}`);
		}

		return value;
	};

	const fields = {
		highPercent,
		lowPercent: percent('scale-low', flags.scaleLow),
		step: count('scale-step', flags.scaleStep, 1),
		windowSeconds: timing('scale-window', flags.scaleWindow, 1, 3600),
		cooldownSeconds: timing('scale-cooldown', flags.scaleCooldown, 0, 24 * 3600),
		warmupSeconds: timing('scale-warmup', flags.scaleWarmup, 0, 3600),
	};
	return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

export function planGroupCommand(rest: readonly string[], flags: CliFlags, files: GroupFiles): GroupPlan {
	const [sub, name, extra] = rest;
	if (flags.wait && sub !== 'delete') {
		throw new UsageError('--wait goes with group delete');
	}

	const needName = () => {
		if (!name) {
			throw new UsageError(`group ${sub} needs a group name, e.g. \`kloud-tui group ${sub} web\``);
		}

		return check(groupNameSchema, name);
	};

	switch (sub) {
		case 'list': {
			return {kind: 'list'};
		}

		case 'show': {
			return {kind: sub, name: needName()};
		}

		case 'delete': {
			return {kind: sub, name: needName(), wait: flags.wait};
		}

		case 'scale': {
			const groupName = needName();
			const size = count('size', extra === undefined ? flags.size : Number(extra), 0);
			if (size === undefined) {
				throw new UsageError('group scale needs the new size, e.g. `kloud-tui group scale web 5`');
			}

			return {kind: 'scale', name: groupName, size};
		}

		case 'create': {
			const groupName = needName();
			if (!flags.image) {
				throw new UsageError('group create needs --image NAME (see `kloud-tui images`)');
			}

			const size = count('size', flags.size, 0);
			if (size === undefined) {
				throw new UsageError('group create needs --size N');
			}

			const fields = specFields(flags, files);
			const min = fields.min ?? 0;
			const max = fields.max ?? Math.max(size, min);
			if (!(min <= size && size <= max)) {
				throw new UsageError(`--size ${size} must be within --min ${min} and --max ${max}`);
			}

			const patch = scalePatch(flags);
			let scaleOn;
			if (patch) {
				const merged = mergeScaleOn(undefined, patch);
				if (!merged.ok) {
					throw new UsageError(merged.error);
				}

				scaleOn = merged.value;
			}

			const draft: GroupDraft = {
				name: groupName,
				image: check(imageNameSchema, flags.image),
				health: {kind: 'none'},
				healthGraceSeconds: DEFAULT_HEALTH_GRACE_SECONDS,
				hostGraceSeconds: DEFAULT_HOST_GRACE_SECONDS,
				...fields,
				size,
				min,
				max,
				...(scaleOn ? {scaleOn} : {}),
			};
			// The whole spec, checked as the controller will read it.
			check(groupSpecSchema, {...draft, uid: 'aaaaaaaa'});
			return {kind: 'create', draft};
		}

		case 'update': {
			const groupName = needName();
			const fields = specFields(flags, files);
			const size = count('size', flags.size, 0);
			if (flags.scaleOn === 'none' && hasScaleTuning(flags)) {
				throw new UsageError('--scale-on none turns scaling off: it takes no --scale-low, --scale-step, --scale-window, --scale-cooldown or --scale-warmup');
			}

			const scaleOn = flags.scaleOn === 'none' ? null : scalePatch(flags);
			const patch: GroupPatch = {
				...fields,
				...(flags.image === undefined ? {} : {image: check(imageNameSchema, flags.image)}),
				...(size === undefined ? {} : {size}),
				...(scaleOn === undefined ? {} : {scaleOn}),
			};
			if (Object.keys(patch).length === 0) {
				throw new UsageError('group update needs something to change, e.g. `kloud-tui group update web --image demo2` (see --help)');
			}

			return {kind: 'update', name: groupName, patch};
		}

		default: {
			throw new UsageError(sub ? `unknown group command "${sub}" (create, list, show, scale, update, delete)` : 'group needs a command: create, list, show, scale, update or delete');
		}
	}
}

export async function runGroupPlan(
	plan: GroupPlan,
	client: KloudClient,
	options: {readonly url: string; readonly topo: Topology; readonly tls?: TlsOptions; readonly json: boolean; readonly timeoutMs: number},
): Promise<Output> {
	const store = await GroupStoreClient.open({
		url: options.url,
		topo: options.topo,
		connectionName: `kloud-tui-groups:${process.pid}`,
		timeoutMs: options.timeoutMs,
		...(options.tls === undefined ? {} : {tls: options.tls}),
	});
	const common = {json: options.json, timeoutMs: options.timeoutMs};
	try {
		switch (plan.kind) {
			case 'create': {
				return await groupCreateCommand(store, plan.draft, common);
			}

			case 'list': {
				return await groupListCommand(store, client, common);
			}

			case 'show': {
				return await groupShowCommand(store, client, plan.name, common);
			}

			case 'scale': {
				return await groupScaleCommand(store, plan.name, plan.size, common);
			}

			case 'update': {
				return await groupUpdateCommand(store, plan.name, plan.patch, common);
			}

			case 'delete': {
				return await groupDeleteCommand(store, client, plan.name, {...common, wait: plan.wait});
			}
		}
	} finally {
		await store.close();
	}
}
