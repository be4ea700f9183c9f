/**
 * The events view's timeline, pure: what happened in the fleet as lines an operator reads, folded
 * from pushed events (who did what: `request.handled`; crashes with their exit; hosts going down
 * and coming back) and from the groups stream (created, scaled, updated, deleted, by whom).
 */
import type {KloudEvent, RequestHandled, StoredGroup, Vm} from '../protocol/index.js';
import {groupOfVm} from '../protocol/member-token.js';
import {filterableBy, type FieldGetters} from './filter.js';

export type TimelineKind = 'vm' | 'host' | 'group' | 'request';

export type TimelineEntry = {
	readonly at: number;
	readonly kind: TimelineKind;
	/** What happened, as a dotted name: `vm.crashed`, `host.down`, `host.up`, `group.scaled`, `request.handled`. */
	readonly type: string;
	readonly host: string | null;
	readonly vm: string | null;
	readonly group: string | null;
	/** Who: the broker-validated user of a request or of a group change. */
	readonly user: string | null;
	readonly text: string;
	/** A failure or a loss (shown in red). */
	readonly isProblem: boolean;
};

/** Newest entries kept. */
export const TIMELINE_LIMIT = 1000;

const EVENT_FIELDS: FieldGetters<TimelineEntry> = {
	kind: entry => entry.kind,
	type: entry => entry.type,
	host: entry => entry.host ?? '',
	vm: entry => entry.vm ?? '',
	group: entry => entry.group ?? '',
	user: entry => entry.user ?? '',
};

export const EVENT_FILTER_FIELDS = Object.keys(EVENT_FIELDS);

export const filterableEntry = filterableBy(EVENT_FIELDS, entry => `${entry.type} ${entry.text}`);

/** Appends `entries` (mostly newer than the last; older ones from a stream's history are put in place), keeping the newest. */
export function appendEntries(timeline: readonly TimelineEntry[], entries: readonly TimelineEntry[]): readonly TimelineEntry[] {
	if (entries.length === 0) {
		return timeline;
	}

	const next = [...timeline, ...entries];
	const isOrdered = next.every((entry, index) => index === 0 || next[index - 1]!.at <= entry.at);
	if (!isOrdered) {
		next.sort((a, b) => a.at - b.at);
	}

	return next.length > TIMELINE_LIMIT ? next.slice(-TIMELINE_LIMIT) : next;
}

function vmEntry(at: number, type: string, vm: Vm, text: string, isProblem: boolean): TimelineEntry {
	return {at, kind: 'vm', type, host: vm.host, vm: vm.id, group: groupOfVm(vm) ?? null, user: null, text, isProblem};
}

/** "start demo → vm-x on host-a", "migrate vm-x from host-a to host-b", "cordon host-a". */
function describeRequest(body: RequestHandled, host: string): string {
	switch (body.request) {
		case 'vm.start': {
			return `start ${body.detail ?? ''}${body.vmId ? ` → ${body.vmId}` : ''} on ${host}`;
		}

		case 'vm.migrate': {
			return `migrate ${body.vmId ?? ''} from ${host}${body.detail ? ` ${body.detail}` : ''}`;
		}

		case 'host.cordon': {
			return `${body.detail === 'off' ? 'uncordon' : 'cordon'} ${host}`;
		}

		default: {
			return `${body.request.replace(/^vm\./, '')} ${body.vmId ?? ''} on ${host}`;
		}
	}
}

/** The timeline entry of a pushed event, if it is one an operator wants to read (not heartbeats). */
export function eventEntry(at: number, event: KloudEvent): TimelineEntry | undefined {
	switch (event.type) {
		case 'vm.started': {
			const {vm} = event.body;
			const restarts = vm.restarts && vm.restarts.count > 0 ? ` (restart ${vm.restarts.count}/${vm.restarts.limit} by its policy)` : '';
			return vmEntry(at, event.type, vm, `${vm.id} ${vm.state} on ${vm.host} (image ${vm.image})${restarts}`, false);
		}

		case 'vm.crashed': {
			const {vm} = event.body;
			const restarts = vm.restarts ? `${vm.restarts.count}/${vm.restarts.limit}` : undefined;
			const then = vm.state === 'starting' ? `; restarting${restarts ? ` (${restarts})` : ''}` : restarts && vm.restarts!.count > 0 ? `; gave up after restarts ${restarts}` : '';
			return vmEntry(at, event.type, vm, `${vm.id} crashed on ${vm.host}: ${vm.exit ?? 'exit unknown'}${then}`, true);
		}

		case 'vm.stopped': {
			const {vm} = event.body;
			return vmEntry(at, event.type, vm, `${vm.id} stopped on ${vm.host}${vm.exit ? ` (${vm.exit})` : ''}`, false);
		}

		case 'vm.rebooted': {
			const {vm} = event.body;
			return vmEntry(at, event.type, vm, `${vm.id} rebooted on ${vm.host}`, false);
		}

		case 'vm.deleted': {
			const {vm} = event.body;
			return vmEntry(at, event.type, vm, `${vm.id} deleted on ${vm.host}`, false);
		}

		case 'host.down': {
			return {at, kind: 'host', type: 'host.down', host: event.body.id, vm: null, group: null, user: null, text: `${event.body.id} down: its agent stopped`, isProblem: true};
		}

		case 'request.handled': {
			const {body} = event;
			// The group controller acts under the agents' user: say it was the controller (a replacement, a scaling).
			const controller = body.sender?.startsWith('kloud-controller@') ? ` (controller on ${body.sender.slice('kloud-controller@'.length)})` : '';
			const who = `${body.user ?? 'someone without a user id'}${controller}`;
			const what = describeRequest(body, event.from);
			const outcome = body.ok ? `done in ${(body.durationMs / 1000).toFixed(1)} s` : `refused: ${body.code ?? 'error'}: ${body.reason ?? ''}`;
			const group = body.group ? ` (group ${body.group})` : '';
			return {
				at,
				kind: 'request',
				type: body.ok ? `request.${body.request}` : `request.${body.request}.failed`,
				host: event.from,
				vm: body.vmId ?? null,
				group: body.group ?? null,
				user: body.user,
				text: `${who}: ${what}${group}: ${outcome}`,
				isProblem: !body.ok,
			};
		}

		case 'host.heartbeat':
		case 'host.hello': {
			return undefined;
		}
	}
}

export function hostEntry(at: number, host: string, type: 'host.up' | 'host.down' | 'host.joined', text: string): TimelineEntry {
	return {at, kind: 'host', type, host, vm: null, group: null, user: null, text, isProblem: type === 'host.down'};
}

/** Why the controller scaled on load, when this change was its doing (`StoredGroup.lastScaling` at this record's time). */
function scalingReason(group: StoredGroup): string {
	const scaling = group.lastScaling;
	return scaling?.at === group.ts ? `: cpu ${Math.round(scaling.cpuPercent)}% over ${scaling.members} members (${scaling.reason})` : '';
}

function describeSpec(group: StoredGroup): string {
	const {spec} = group;
	return `${spec.size} × ${spec.image} (min ${spec.min}, max ${spec.max})`;
}

/** What changed between two readings of the groups stream, as entries (at the records' own times). */
export function groupEntries(before: ReadonlyMap<string, StoredGroup>, after: ReadonlyMap<string, StoredGroup>, now: number): TimelineEntry[] {
	const entries: TimelineEntry[] = [];
	const entry = (at: number, name: string, type: string, user: string | null, text: string): TimelineEntry => ({at, kind: 'group', type, host: null, vm: null, group: name, user, text, isProblem: false});
	for (const [name, group] of after) {
		const old = before.get(name);
		const by = group.by === null ? '' : ` by ${group.by}`;
		if (!old || old.spec.uid !== group.spec.uid) {
			entries.push(entry(group.ts, name, 'group.created', group.by, `group ${name} created${by}: ${describeSpec(group)}`));
		} else if (old.version !== group.version) {
			entries.push(
				old.spec.size === group.spec.size
					? entry(group.ts, name, 'group.updated', group.by, `group ${name} updated${by}: ${describeSpec(group)}`)
					: entry(group.ts, name, 'group.scaled', group.by, `group ${name} scaled ${old.spec.size} → ${group.spec.size}${by}${scalingReason(group)}`),
			);
		}
	}

	for (const name of before.keys()) {
		if (!after.has(name)) {
			entries.push(entry(now, name, 'group.deleted', null, `group ${name} deleted: the controller deletes its members`));
		}
	}

	return entries;
}
