/**
 * The fleet as the TUI sees it: every host and VM, folded from list rounds, pushed events and
 * clock ticks by a pure reducer. A host's snapshot replaces that host's rows, so a lost event heals
 * on the next round. Time arrives as data; nothing here reads the clock.
 */
import type {HostSnapshot, HostStatus, KloudEvent, StoredGroup, Vm} from '../protocol/index.js';
import {preferredCopy} from '../protocol/vm-copies.js';
import {appendEntries, eventEntry, groupEntries, hostEntry, type TimelineEntry} from './timeline.js';

/** A host silent for longer than this is shown as down. */
export const HOST_DOWN_AFTER_MS = 60_000;

export type ConnectionView =
	| {readonly status: 'connecting'}
	/** `broker`: `host:port` of the node the TUI is on (with several broker URLs, it may change). */
	| {readonly status: 'connected'; readonly broker?: string}
	| {readonly status: 'disconnected'; readonly error: string; readonly retryAt: number | null};

export type HostView = {
	readonly id: string;
	readonly status: HostStatus | null;
	/** When it last answered a list round (null: never). */
	readonly lastAnsweredAt: number | null;
	/** When anything was last heard from it (answer, heartbeat, event). */
	readonly lastHeardAt: number;
	/** It did not answer the latest round. */
	readonly isStale: boolean;
	/** It said it was going down (clean agent shutdown). */
	readonly hasLeft: boolean;
	/** The timeline says it is down (so its coming back is told once, and its going down too). */
	readonly isDownNoted?: boolean;
};

/** A group as the TUI knows it: its stored spec, and the latest change of its size (who made it, from what to what). */
export type GroupView = {
	readonly stored: StoredGroup;
	readonly lastScale: {readonly from: number; readonly to: number; readonly by: string | null; readonly at: number} | null;
};

export type FleetState = {
	readonly hosts: ReadonlyMap<string, HostView>;
	readonly vms: ReadonlyMap<string, Vm>;
	readonly connection: ConnectionView;
	/** The latest loss of the broker connection: the header says so for a while after it is back, however short it was. */
	readonly lastDrop: BrokerDrop | null;
	readonly lastRoundAt: number | null;
	readonly now: number;
	/** The groups, from the groups stream (empty until it is read, or where it cannot be). */
	readonly groups: ReadonlyMap<string, GroupView>;
	/** What happened, oldest first (the events view). */
	readonly timeline: readonly TimelineEntry[];
};

export type BrokerDrop = {readonly error: string; readonly lostAt: number; readonly backAt: number | null};

/** How long the header recalls a broker drop once the connection is back. */
export const DROP_NOTICE_MS = 60_000;

export type FleetEvent =
	| {readonly type: 'round'; readonly at: number; readonly snapshots: readonly HostSnapshot[]; readonly missing: readonly string[]}
	| {readonly type: 'kloud'; readonly at: number; readonly event: KloudEvent}
	| {readonly type: 'connection'; readonly connection: ConnectionView}
	| {readonly type: 'groups'; readonly at: number; readonly groups: ReadonlyMap<string, StoredGroup>}
	| {readonly type: 'tick'; readonly now: number};

export function initialFleet(now: number): FleetState {
	return {hosts: new Map(), vms: new Map(), connection: {status: 'connecting'}, lastDrop: null, lastRoundAt: null, now, groups: new Map(), timeline: []};
}

function brokerOf(connection: ConnectionView): string | undefined {
	return connection.status === 'connected' ? connection.broker : undefined;
}

function assertNever(value: never): never {
	throw new Error(`unhandled fleet event ${JSON.stringify(value)}`);
}

/** A drop starts when the connection is lost (retries keep its start) and ends when it is back. */
function nextDrop(state: FleetState, connection: ConnectionView): BrokerDrop | null {
	const drop = state.lastDrop;
	if (connection.status === 'disconnected') {
		return {error: connection.error, lostAt: drop !== null && drop.backAt === null ? drop.lostAt : state.now, backAt: null};
	}

	return connection.status === 'connected' && drop !== null && drop.backAt === null ? {...drop, backAt: state.now} : drop;
}

export function fleetReducer(state: FleetState, event: FleetEvent): FleetState {
	switch (event.type) {
		case 'round': {
			return applyRound(state, event.at, event.snapshots);
		}

		case 'kloud': {
			return applyKloudEvent(state, event.at, event.event);
		}

		case 'connection': {
			const same = state.connection.status === event.connection.status && event.connection.status !== 'disconnected' && brokerOf(state.connection) === brokerOf(event.connection);
			return same ? state : {...state, connection: event.connection, lastDrop: nextDrop(state, event.connection)};
		}

		case 'groups': {
			return applyGroups(state, event.at, event.groups);
		}

		case 'tick': {
			return event.now === state.now ? state : noteSilentHosts({...state, now: event.now});
		}

		default: {
			return assertNever(event);
		}
	}
}

function applyGroups(state: FleetState, at: number, stored: ReadonlyMap<string, StoredGroup>): FleetState {
	const before = new Map([...state.groups].map(([name, group]) => [name, group.stored]));
	const groups = new Map<string, GroupView>();
	for (const [name, group] of stored) {
		const old = state.groups.get(name);
		const isSame = old !== undefined && old.stored.spec.uid === group.spec.uid;
		const isScaled = isSame && old.stored.spec.size !== group.spec.size;
		groups.set(name, {stored: group, lastScale: isScaled ? {from: old.stored.spec.size, to: group.spec.size, by: group.by, at: group.ts} : isSame ? old.lastScale : null});
	}

	return {...state, groups, timeline: appendEntries(state.timeline, groupEntries(before, stored, at))};
}

/** Hosts silent past `HOST_DOWN_AFTER_MS` go into the timeline as down, once. */
function noteSilentHosts(state: FleetState): FleetState {
	const down = [...state.hosts.values()].filter(host => !host.isDownNoted && hostHealth(host, state.now) === 'down');
	if (down.length === 0) {
		return state;
	}

	const hosts = new Map(state.hosts);
	for (const host of down) {
		hosts.set(host.id, {...host, isDownNoted: true});
	}

	const entries = down.map(host => hostEntry(state.now, host.id, 'host.down', `${host.id} down: silent for ${Math.round((state.now - host.lastHeardAt) / 1000)} s`));
	return {...state, hosts, timeline: appendEntries(state.timeline, entries)};
}

/** The entry for a host heard from again (after it was noted down), or first heard of once the TUI knew the fleet. */
function backEntry(state: FleetState, id: string, at: number): TimelineEntry | undefined {
	const host = state.hosts.get(id);
	if (!host) {
		return state.lastRoundAt === null ? undefined : hostEntry(at, id, 'host.joined', `${id} joined`);
	}

	return host.isDownNoted || host.hasLeft ? hostEntry(at, id, 'host.up', `${id} back after ${Math.round((at - host.lastHeardAt) / 1000)} s`) : undefined;
}

function applyRound(state: FleetState, at: number, snapshots: readonly HostSnapshot[]): FleetState {
	const hosts = new Map(state.hosts);
	const answered = new Set(snapshots.map(snapshot => snapshot.host.id));
	const back = snapshots.flatMap(snapshot => backEntry(state, snapshot.host.id, at) ?? []);
	for (const [id, host] of hosts) {
		if (!answered.has(id) && !host.isStale) {
			hosts.set(id, {...host, isStale: true});
		}
	}

	for (const snapshot of snapshots) {
		hosts.set(snapshot.host.id, {
			id: snapshot.host.id,
			status: snapshot.host,
			lastAnsweredAt: at,
			lastHeardAt: at,
			isStale: false,
			hasLeft: false,
		});
	}

	// Answered hosts' rows are replaced wholesale; silent hosts keep their last rows (shown stale).
	const vms = new Map<string, Vm>();
	for (const vm of state.vms.values()) {
		if (!answered.has(vm.host)) {
			vms.set(vm.id, vm);
		}
	}

	// A VM listed by two hosts (mid-migration) is one row: the copy not marked migrating.
	for (const snapshot of snapshots) {
		for (const vm of snapshot.vms) {
			const held = vms.get(vm.id);
			vms.set(vm.id, held === undefined ? vm : preferredCopy(held, vm));
		}
	}

	return {...state, hosts, vms, lastRoundAt: at, now: Math.max(state.now, at), timeline: appendEntries(state.timeline, back)};
}

function touchHost(hosts: Map<string, HostView>, id: string, at: number, patch: Partial<HostView> = {}): void {
	const host = hosts.get(id);
	hosts.set(id, {
		id,
		status: host?.status ?? null,
		lastAnsweredAt: host?.lastAnsweredAt ?? null,
		lastHeardAt: Math.max(host?.lastHeardAt ?? 0, at),
		isStale: host?.isStale ?? true,
		hasLeft: false,
		isDownNoted: false,
		...patch,
	});
}

function applyKloudEvent(state: FleetState, at: number, event: KloudEvent): FleetState {
	// The TUI's own echo of a reply (id `local`) is not news: the agent's event tells it.
	const entry = event.id === 'local' ? undefined : eventEntry(at, event);
	const next = applyToFleet(state, at, event);
	return entry === undefined ? next : {...next, timeline: appendEntries(next.timeline, [entry])};
}

function applyToFleet(state: FleetState, at: number, event: KloudEvent): FleetState {
	switch (event.type) {
		case 'host.heartbeat': {
			const back = backEntry(state, event.body.id, at);
			const hosts = new Map(state.hosts);
			touchHost(hosts, event.body.id, at, {status: event.body});
			return {...state, hosts, timeline: back ? appendEntries(state.timeline, [back]) : state.timeline};
		}

		case 'host.down': {
			const host = state.hosts.get(event.body.id);
			if (!host) {
				return state;
			}

			const hosts = new Map(state.hosts);
			hosts.set(host.id, {...host, isStale: true, hasLeft: true, isDownNoted: true});
			return {...state, hosts};
		}

		// A stopped VM is kept (its disk is, until it is deleted): it stays in the table as `stopped`.
		case 'vm.started':
		case 'vm.rebooted':
		case 'vm.stopped':
		case 'vm.crashed': {
			const vms = new Map(state.vms);
			vms.set(event.body.vm.id, event.body.vm);
			const hosts = new Map(state.hosts);
			touchHost(hosts, event.body.vm.host, at);
			return {...state, vms, hosts};
		}

		case 'vm.deleted': {
			if (!state.vms.has(event.body.vm.id)) {
				return state;
			}

			const vms = new Map(state.vms);
			vms.delete(event.body.vm.id);
			return {...state, vms};
		}

		case 'host.hello':
		case 'request.handled': {
			return state;
		}

		default: {
			return assertNever(event);
		}
	}
}

export type HostHealth = 'up' | 'stale' | 'down';

export function hostHealth(host: HostView, now: number): HostHealth {
	if (host.hasLeft || now - host.lastHeardAt > HOST_DOWN_AFTER_MS) {
		return 'down';
	}

	return host.isStale ? 'stale' : 'up';
}
