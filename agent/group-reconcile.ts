/**
 * The group controller's decisions, pure: a group's stored spec × its observed members × the hosts
 * with room → the starts and deletes that bring it to its size. Time and health arrive as data.
 *
 * - Each slot 0 … size-1 holds one member. A slot without a healthy (or booting) member gets a new
 *   one, whose client token names (group, uid, version, slot, gen): a controller that fails over
 *   mid-start computes the same token, and the agents answer it with the VM already made.
 * - Replacement is start-first: an unhealthy member is deleted only once its slot's new member runs.
 * - Slots at or past the size (scaled down), duplicates in a slot (a lost host came back), and
 *   members of groups that no longer exist are deleted. Members on a lost host cannot be: they
 *   are left until the host answers again.
 * - Spread: a new member goes to the host with the fewest members of its group, then the most room;
 *   never to a cordoned host (one being drained).
 * - A VM id seen on two hosts is one VM that moved (live migration) between the snapshots read: one
 *   member, never a duplicate to delete (a delete sent to its new host would lose it).
 */
import {memberToken, parseMemberToken, type MemberTag, type StoredGroup, type Vm} from '../source/protocol/index.js';

/**
 * `starting`: booting (or within its health grace); `healthy`; `unhealthy`: crashed, stopped, or
 * failing its health check; `lost`: its host has been silent past the host grace.
 */
export type MemberHealth = 'starting' | 'healthy' | 'unhealthy' | 'lost';

export type ObservedMember = {readonly vm: Vm; readonly tag: MemberTag; readonly health: MemberHealth};

/** A host that answered: how many more VMs it takes, and its images; a cordoned one takes none. */
export type HostRoom = {readonly id: string; readonly free: number; readonly images: readonly string[]; readonly isCordoned?: boolean};

export type GroupAction =
	| {readonly kind: 'start'; readonly group: string; readonly slot: number; readonly token: string; readonly host: string; readonly reason: string}
	| {readonly kind: 'delete'; readonly group: string; readonly vmId: string; readonly host: string; readonly reason: string}
	/** A slot wants a member and no host has room (or the image). */
	| {readonly kind: 'blocked'; readonly group: string; readonly slot: number; readonly reason: string};

export type GroupReconcileInput = {
	readonly group: StoredGroup;
	/** Observed VMs tagged with this group's name and uid. */
	readonly members: readonly ObservedMember[];
	readonly hosts: readonly HostRoom[];
	/** Tokens a start answered with an already deleted VM: a new generation is needed for that slot. */
	readonly burned?: ReadonlySet<string>;
	/**
	 * Hosts in the roster that did not answer and whose members this controller has never seen (it
	 * was elected since): a slot with no member seen may have one there, so it is not filled yet.
	 */
	readonly unseenHosts?: readonly string[];
};

const HEALTH_RANK: Record<MemberHealth, number> = {healthy: 0, starting: 1, unhealthy: 2, lost: 3};

/** Best member first: healthier, newer generation, then by id (so every controller picks the same). */
function byPreference(a: ObservedMember, b: ObservedMember): number {
	return HEALTH_RANK[a.health] - HEALTH_RANK[b.health] || b.tag.gen - a.tag.gen || a.vm.id.localeCompare(b.vm.id);
}

export function reconcileGroup(input: GroupReconcileInput): GroupAction[] {
	const {spec, version} = input.group;
	const actions: GroupAction[] = [];
	const bySlot = new Map<number, ObservedMember[]>();
	const observed = onePerVm(input.members);
	for (const member of observed) {
		bySlot.set(member.tag.slot, [...(bySlot.get(member.tag.slot) ?? []), member]);
	}

	// Members per host (lost ones too: their host may come back; not unhealthy ones, which are on
	// their way out) and room, updated as starts are planned.
	const perHost = new Map<string, number>();
	for (const member of observed.filter(member => member.health !== 'unhealthy')) {
		perHost.set(member.vm.host, (perHost.get(member.vm.host) ?? 0) + 1);
	}

	const withImage = input.hosts.filter(host => host.images.includes(spec.image));
	const room = new Map(withImage.filter(host => !host.isCordoned).map(host => [host.id, host.free]));
	const cordoned = withImage.filter(host => host.isCordoned).map(host => host.id);
	const remove = (member: ObservedMember, reason: string) => {
		actions.push({kind: 'delete', group: spec.name, vmId: member.vm.id, host: member.vm.host, reason});
	};

	for (const [slot, members] of [...bySlot].sort(([a], [b]) => a - b)) {
		if (slot >= spec.size) {
			for (const member of members.filter(member => member.health !== 'lost')) {
				remove(member, `scaled down to ${spec.size}`);
			}
		}
	}

	for (let slot = 0; slot < spec.size; slot++) {
		const members = [...(bySlot.get(slot) ?? [])].sort(byPreference);
		const good = members.filter(member => member.health === 'healthy' || member.health === 'starting');
		const keep = good[0];
		for (const extra of good.slice(1)) {
			remove(extra, `a second member in slot ${slot} (${keep!.vm.id} is kept)`);
		}

		const unhealthy = members.filter(member => member.health === 'unhealthy');
		if (keep) {
			if (keep.health === 'healthy') {
				for (const member of unhealthy) {
					remove(member, `replaced by ${keep.vm.id}`);
				}
			}

			continue;
		}

		// Replacements that failed too: keep the newest failed one to look at, not a pile of them.
		for (const member of unhealthy.slice(1)) {
			remove(member, `unhealthy, and a newer failed member in slot ${slot} is kept`);
		}

		let gen = members.length === 0 ? 0 : Math.max(...members.map(member => member.tag.gen)) + 1;
		let token = memberToken({group: spec.name, uid: spec.uid, version, slot, gen});
		while (input.burned?.has(token)) {
			gen++;
			token = memberToken({group: spec.name, uid: spec.uid, version, slot, gen});
		}

		if (members.length === 0 && input.unseenHosts !== undefined && input.unseenHosts.length > 0) {
			actions.push({kind: 'blocked', group: spec.name, slot, reason: `slot ${slot} missing: waiting for ${input.unseenHosts.join(', ')} to answer (it may hold the member)`});
			continue;
		}

		const host = pickHost(room, perHost);
		const why = members.length === 0 ? 'missing' : `replacing ${members.map(member => `${member.vm.id} (${member.health})`).join(', ')}`;
		if (host === undefined) {
			actions.push({kind: 'blocked', group: spec.name, slot, reason: `slot ${slot} ${why}: no host has room for image ${spec.image}${cordoned.length > 0 ? ` (cordoned: ${cordoned.join(', ')})` : ''}`});
			continue;
		}

		room.set(host, (room.get(host) ?? 0) - 1);
		perHost.set(host, (perHost.get(host) ?? 0) + 1);
		actions.push({kind: 'start', group: spec.name, slot, token, host, reason: `slot ${slot} ${why}`});
	}

	return actions;
}

/** One entry per VM id: the healthiest sighting (a VM seen on two hosts moved between them). */
function onePerVm(members: readonly ObservedMember[]): ObservedMember[] {
	const best = new Map<string, ObservedMember>();
	for (const member of members) {
		const seen = best.get(member.vm.id);
		if (!seen || HEALTH_RANK[member.health] < HEALTH_RANK[seen.health]) {
			best.set(member.vm.id, member);
		}
	}

	return [...best.values()];
}

/** The host with room that has the fewest of the group's members, then the most room, then by id. */
function pickHost(room: ReadonlyMap<string, number>, perHost: ReadonlyMap<string, number>): string | undefined {
	const candidates = [...room].filter(([, free]) => free > 0);
	candidates.sort(([a, freeA], [b, freeB]) => (perHost.get(a) ?? 0) - (perHost.get(b) ?? 0) || freeB - freeA || a.localeCompare(b));
	return candidates[0]?.[0];
}

/**
 * VMs tagged with a group that was deleted (its tombstone read: `deleted` holds `name:uid`), or
 * that was made anew under its name: deleted. A member of a group this controller knows nothing of
 * is left alone (a record it could not read, e.g. a newer kloud's, must not cost a fleet its VMs).
 */
export function orphanActions(vms: readonly Vm[], groups: ReadonlyMap<string, StoredGroup>, deleted: ReadonlySet<string>): GroupAction[] {
	const actions: GroupAction[] = [];
	for (const vm of vms) {
		const tag = parseMemberToken(vm.clientToken);
		if (!tag || vm.state === 'deleting') {
			continue;
		}

		const current = groups.get(tag.group);
		if (current ? current.spec.uid !== tag.uid : deleted.has(`${tag.group}:${tag.uid}`)) {
			actions.push({kind: 'delete', group: tag.group, vmId: vm.id, host: vm.host, reason: current ? `group ${tag.group} was made anew` : `group ${tag.group} was deleted`});
		}
	}

	return actions;
}

export type HealthInput = {
	readonly vm: Vm;
	readonly now: number;
	/** The member's host is silent past the host grace. */
	readonly isHostLost: boolean;
	/**
	 * How long the member's host has been silent (0 or absent: it answered this round). Its check is
	 * judged as of the host's last answer: a host's hiccup shorter than the host grace never fails
	 * its members' checks (nobody could check them meanwhile).
	 */
	readonly silentMs?: number;
	/**
	 * With a health check (`console:` or `tcp:`): when it last passed (a matching console line, a
	 * TCP connect taken; undefined: never), the boot grace (until a first pass, counted from its
	 * creation), and how long it may go without a pass once it has passed (default: the grace).
	 */
	readonly check?: {readonly lastOkAt: number | undefined; readonly graceMs: number; readonly failMs?: number};
};

/** How healthy a member is (see `MemberHealth`). */
export function memberHealth(input: HealthInput): MemberHealth {
	const {vm} = input;
	if (input.isHostLost) {
		return 'lost';
	}

	if (vm.state === 'crashed' || vm.state === 'stopped' || vm.state === 'stopping') {
		return 'unhealthy';
	}

	if (vm.state === 'starting') {
		return 'starting';
	}

	if (input.check) {
		const {lastOkAt, graceMs, failMs = graceMs} = input.check;
		// Booting: the grace from its creation. Once it has passed (it is up): failMs from the last pass.
		const hasPassed = lastOkAt !== undefined && lastOkAt >= vm.createdAt;
		const since = hasPassed ? lastOkAt : vm.createdAt;
		if (input.now - (input.silentMs ?? 0) - since > (hasPassed ? failMs : graceMs)) {
			return 'unhealthy';
		}

		return lastOkAt === undefined ? 'starting' : 'healthy';
	}

	return 'healthy';
}
