import {describe, expect, it} from 'vitest';
import {memberHealth, orphanActions, reconcileGroup, type GroupAction, type HostRoom, type MemberHealth, type ObservedMember} from '../agent/group-reconcile.js';
import {
	applyGroupRecord,
	groupOfVm,
	groupSpecSchema,
	memberToken,
	parseHealthCheck,
	parseMemberToken,
	PROTOCOL_VERSION,
	type GroupSpec,
	type StoredGroup,
	type Vm,
} from '../source/protocol/index.js';

const spec = (overrides: Partial<GroupSpec> = {}): GroupSpec => ({
	name: 'web',
	uid: 'abcdefgh',
	image: 'demo',
	size: 3,
	min: 0,
	max: 10,
	health: {kind: 'none'},
	healthGraceSeconds: 90,
	hostGraceSeconds: 15,
	...overrides,
});
const stored = (overrides: Partial<GroupSpec> = {}, version = 7): StoredGroup => ({spec: spec(overrides), version, by: 'guest', ts: 1});

let nextId = 0;
const vmOn = (host: string, token: string | null, state: Vm['state'] = 'running'): Vm => ({
	id: `vm-${String.fromCharCode(97 + (nextId++ % 26)).repeat(8)}`,
	host,
	image: 'demo',
	state,
	memoryMb: 64,
	cpus: 1,
	pid: 1,
	createdAt: 0,
	uptimeSeconds: 1,
	ip: null,
	mac: null,
	exit: null,
	clientToken: token,
});
const member = (host: string, slot: number, health: MemberHealth = 'healthy', gen = 0, version = 7): ObservedMember => {
	const tag = {group: 'web', uid: 'abcdefgh', version, slot, gen};
	return {vm: vmOn(host, memberToken(tag)), tag, health};
};
const hosts = (...entries: Array<[string, number]>): HostRoom[] => entries.map(([id, free]) => ({id, free, images: ['demo']}));
const summary = (actions: readonly GroupAction[]) =>
	actions.map(action => (action.kind === 'start' ? `start ${action.slot}@${action.host} ${action.token}` : action.kind === 'delete' ? `delete ${action.vmId}@${action.host}` : `blocked ${action.slot}`));

describe('reconcileGroup', () => {
	it('a member listed on two hosts (live-migrated between the snapshots read) is one member: nothing is deleted', () => {
		const moving = member('a', 0);
		const arrived: ObservedMember = {...moving, vm: {...moving.vm, host: 'b'}};
		for (const members of [
			[moving, arrived, member('c', 1), member('c', 2)],
			[arrived, moving, member('c', 1), member('c', 2)],
		]) {
			expect(reconcileGroup({group: stored(), members, hosts: hosts(['a', 4], ['b', 4], ['c', 4])})).toEqual([]);
		}
	});

	it('places no member on a cordoned host (a drained one), however much room it has', () => {
		const rooms: HostRoom[] = [{id: 'a', free: 10, images: ['demo'], isCordoned: true}, ...hosts(['b', 2])];
		expect(summary(reconcileGroup({group: stored({size: 2}), members: [], hosts: rooms}))).toEqual(['start 0@b grp:web:abcdefgh:7:0:0', 'start 1@b grp:web:abcdefgh:7:1:0']);
		const blocked = reconcileGroup({group: stored({size: 1}), members: [], hosts: [{id: 'a', free: 10, images: ['demo'], isCordoned: true}]});
		expect(blocked).toEqual([{kind: 'blocked', group: 'web', slot: 0, reason: 'slot 0 missing: no host has room for image demo (cordoned: a)'}]);
	});

	it('starts a new group one member per host, with tokens per (group, uid, version, slot, gen)', () => {
		expect(summary(reconcileGroup({group: stored(), members: [], hosts: hosts(['a', 4], ['b', 4], ['c', 4])}))).toEqual([
			'start 0@a grp:web:abcdefgh:7:0:0',
			'start 1@b grp:web:abcdefgh:7:1:0',
			'start 2@c grp:web:abcdefgh:7:2:0',
		]);
	});

	it('is idempotent: the same observation gives the same starts (a failed-over controller sends the same tokens)', () => {
		const input = {group: stored(), members: [member('a', 0)], hosts: hosts(['a', 4], ['b', 4], ['c', 4])};
		expect(reconcileGroup(input)).toEqual(reconcileGroup(input));
		expect(summary(reconcileGroup(input))).toEqual(['start 1@b grp:web:abcdefgh:7:1:0', 'start 2@c grp:web:abcdefgh:7:2:0']);
	});

	it('spreads: no second member on a host while another host has room', () => {
		const actions = reconcileGroup({group: stored(), members: [member('a', 0)], hosts: hosts(['a', 10], ['b', 1], ['c', 0])});
		expect(summary(actions)).toEqual(['start 1@b grp:web:abcdefgh:7:1:0', 'start 2@a grp:web:abcdefgh:7:2:0']);
	});

	it('does nothing for a group at its size, all healthy (or booting)', () => {
		expect(reconcileGroup({group: stored(), members: [member('a', 0), member('b', 1, 'starting'), member('c', 2)], hosts: hosts(['a', 1])})).toEqual([]);
	});

	it('replaces an unhealthy member start-first, with the next generation, and deletes it only once the new one runs', () => {
		const crashed = member('a', 0, 'unhealthy');
		const others = [member('b', 1), member('c', 2)];
		const first = reconcileGroup({group: stored(), members: [crashed, ...others], hosts: hosts(['a', 4], ['b', 4], ['c', 4])});
		expect(summary(first)).toEqual(['start 0@a grp:web:abcdefgh:7:0:1']);
		const booting = member('b', 0, 'starting', 1);
		expect(reconcileGroup({group: stored(), members: [crashed, booting, ...others], hosts: hosts(['a', 4])})).toEqual([]);
		const running = {...booting, health: 'healthy' as const};
		expect(summary(reconcileGroup({group: stored(), members: [crashed, running, ...others], hosts: hosts(['a', 4])}))).toEqual([`delete ${crashed.vm.id}@a`]);
	});

	it('puts a replacement where the unhealthy member was when that host has room (spread kept)', () => {
		const crashed = member('b', 1, 'unhealthy');
		const actions = reconcileGroup({group: stored(), members: [member('a', 0), crashed, member('c', 2)], hosts: hosts(['a', 4], ['b', 4], ['c', 4])});
		expect(summary(actions)).toEqual(['start 1@b grp:web:abcdefgh:7:1:1']);
	});

	it('replaces the members of a lost host elsewhere, and deletes the extras when it comes back', () => {
		const lost = member('c', 2, 'lost');
		const live = [member('a', 0), member('b', 1)];
		expect(summary(reconcileGroup({group: stored(), members: [...live, lost], hosts: hosts(['a', 4], ['b', 4])}))).toEqual(['start 2@a grp:web:abcdefgh:7:2:1']);
		const replacement = member('a', 2, 'healthy', 1);
		const back = {...lost, health: 'healthy' as const};
		expect(summary(reconcileGroup({group: stored(), members: [...live, replacement, back], hosts: hosts(['a', 4], ['b', 4], ['c', 4])}))).toEqual([`delete ${back.vm.id}@c`]);
	});

	it('keeps one of two members with the same token (a start made twice while a host was silent)', () => {
		const one = member('a', 0);
		const two = member('b', 0);
		const actions = reconcileGroup({group: stored({size: 1}), members: [one, two], hosts: hosts(['a', 4], ['b', 4])});
		expect(actions).toHaveLength(1);
		expect(actions[0]).toMatchObject({kind: 'delete'});
	});

	it('scales down by deleting the highest slots, but never a member it cannot reach', () => {
		const members = [member('a', 0), member('b', 1), member('c', 2), member('d', 3, 'lost')];
		expect(summary(reconcileGroup({group: stored({size: 2}), members, hosts: hosts(['a', 4])}))).toEqual([`delete ${members[2]!.vm.id}@c`]);
	});

	it('scales up with tokens of the new version (a slot deleted before gets a fresh token, not its gone VM)', () => {
		const members = [member('a', 0), member('b', 1)];
		expect(summary(reconcileGroup({group: stored({size: 3}, 9), members, hosts: hosts(['a', 4], ['b', 4], ['c', 4])}))).toEqual(['start 2@c grp:web:abcdefgh:9:2:0']);
	});

	it('skips a burned token (its start answered with a deleted VM)', () => {
		const actions = reconcileGroup({group: stored({size: 1}), members: [], hosts: hosts(['a', 4]), burned: new Set(['grp:web:abcdefgh:7:0:0', 'grp:web:abcdefgh:7:0:1'])});
		expect(summary(actions)).toEqual(['start 0@a grp:web:abcdefgh:7:0:2']);
	});

	it('after a failover, leaves empty slots empty while a host it never saw is silent (it may hold them), but still replaces what it sees', () => {
		const crashed = member('a', 1, 'unhealthy');
		const actions = reconcileGroup({group: stored(), members: [member('a', 0), crashed], hosts: hosts(['a', 4], ['b', 4]), unseenHosts: ['c']});
		expect(summary(actions)).toEqual(['start 1@b grp:web:abcdefgh:7:1:1', 'blocked 2']);
	});

	it('says blocked when no host has room or the image', () => {
		const actions = reconcileGroup({group: stored({size: 1}), members: [], hosts: [{id: 'a', free: 0, images: ['demo']}, {id: 'b', free: 5, images: ['other']}]});
		expect(actions).toEqual([{kind: 'blocked', group: 'web', slot: 0, reason: 'slot 0 missing: no host has room for image demo'}]);
	});

	it('keeps only the newest of several failed members while no replacement runs', () => {
		const old = member('a', 0, 'unhealthy', 0);
		const newer = member('b', 0, 'unhealthy', 1);
		expect(summary(reconcileGroup({group: stored({size: 1}), members: [old, newer], hosts: hosts(['c', 1])}))).toEqual([`delete ${old.vm.id}@a`, 'start 0@c grp:web:abcdefgh:7:0:2']);
	});
});

describe('orphanActions', () => {
	it('deletes the members of deleted or re-made groups, and leaves other VMs (and groups it never read) alone', () => {
		const groups = new Map([['web', stored()]]);
		const ours = vmOn('a', 'grp:web:abcdefgh:7:0:0');
		const gone = vmOn('a', 'grp:db:abcdefgh:1:0:0');
		const remade = vmOn('b', 'grp:web:zzzzzzzz:1:0:0');
		const unknown = vmOn('b', 'grp:cache:abcdefgh:1:0:0');
		const plain = vmOn('a', 'some-token');
		const deleted = new Set(['db:abcdefgh']);
		expect(orphanActions([ours, gone, remade, unknown, plain, vmOn('a', null)], groups, deleted).map(action => action.kind === 'delete' && action.vmId)).toEqual([gone.id, remade.id]);
	});
});

describe('memberHealth', () => {
	const vm = (state: Vm['state']) => ({...vmOn('a', null, state), createdAt: 1000});
	it.each([
		['running, no check', {vm: vm('running'), now: 5000, isHostLost: false}, 'healthy'],
		['booting', {vm: vm('starting'), now: 5000, isHostLost: false}, 'starting'],
		['crashed (its restart policy gave up)', {vm: vm('crashed'), now: 5000, isHostLost: false}, 'unhealthy'],
		['stopped', {vm: vm('stopped'), now: 5000, isHostLost: false}, 'unhealthy'],
		['host silent past the grace', {vm: vm('running'), now: 5000, isHostLost: true}, 'lost'],
		['console check, no line yet, within the boot grace', {vm: vm('running'), now: 5000, isHostLost: false, check: {lastOkAt: undefined, graceMs: 10_000}}, 'starting'],
		['console check, no line past the boot grace', {vm: vm('running'), now: 12_000, isHostLost: false, check: {lastOkAt: undefined, graceMs: 10_000}}, 'unhealthy'],
		['console check, recent line', {vm: vm('running'), now: 12_000, isHostLost: false, check: {lastOkAt: 11_000, graceMs: 10_000}}, 'healthy'],
		['console check, lines stopped', {vm: vm('running'), now: 30_000, isHostLost: false, check: {lastOkAt: 11_000, graceMs: 10_000}}, 'unhealthy'],
		// --unhealthy-after: once a member has passed, it fails that long after its last pass, boot grace or not.
		['tcp check passed, failing shorter than unhealthy-after', {vm: vm('running'), now: 20_000, isHostLost: false, check: {lastOkAt: 11_000, graceMs: 120_000, failMs: 10_000}}, 'healthy'],
		['tcp check passed, failing past unhealthy-after, within the boot grace', {vm: vm('running'), now: 22_000, isHostLost: false, check: {lastOkAt: 11_000, graceMs: 120_000, failMs: 10_000}}, 'unhealthy'],
		['tcp check never passed: the boot grace, not unhealthy-after', {vm: vm('running'), now: 60_000, isHostLost: false, check: {lastOkAt: undefined, graceMs: 120_000, failMs: 10_000}}, 'starting'],
		['tcp check passed, its host silent for 5 s (under the host grace): judged as of its last answer', {vm: vm('running'), now: 24_000, isHostLost: false, silentMs: 5000, check: {lastOkAt: 11_000, graceMs: 120_000, failMs: 10_000}}, 'healthy'],
		['tcp check passed, its host answering, failing past unhealthy-after', {vm: vm('running'), now: 24_000, isHostLost: false, silentMs: 0, check: {lastOkAt: 11_000, graceMs: 120_000, failMs: 10_000}}, 'unhealthy'],
		['tcp check never passed, past the boot grace', {vm: vm('running'), now: 122_000, isHostLost: false, check: {lastOkAt: undefined, graceMs: 120_000, failMs: 10_000}}, 'unhealthy'],
	] as const)('%s → %s', (_name, input, expected) => {
		expect(memberHealth(input)).toBe(expected);
	});
});

describe('group records and member tokens', () => {
	it('round-trips a member token and finds the group of a VM', () => {
		const tag = {group: 'web-1', uid: 'a1b2c3d4', version: 123_456, slot: 42, gen: 3};
		expect(parseMemberToken(memberToken(tag))).toEqual(tag);
		expect(memberToken(tag).length).toBeLessThanOrEqual(64);
		expect(groupOfVm({clientToken: memberToken(tag)})).toBe('web-1');
		expect(groupOfVm({clientToken: 'grp:web'})).toBeUndefined();
		expect(groupOfVm({clientToken: null})).toBeUndefined();
	});

	it('the latest put wins, a tombstone deletes only the incarnation it names, sync changes nothing', () => {
		let groups: ReadonlyMap<string, StoredGroup> = new Map();
		groups = applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'group.put', ts: 1, spec: spec()}, 0, 'alice');
		groups = applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'group.put', ts: 2, spec: spec({size: 5})}, 4, 'bob');
		expect(groups.get('web')).toMatchObject({version: 4, by: 'bob', spec: {size: 5}});
		const same = applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'sync', ts: 3, id: 'x'}, 5, null);
		expect(same).toBe(groups);
		expect(applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'group.delete', ts: 3, name: 'web', uid: 'zzzzzzzz'}, 6, null)).toBe(groups);
		expect(applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'group.delete', ts: 3, name: 'web', uid: 'abcdefgh'}, 6, null).has('web')).toBe(false);
	});

	it('a scaling record sets the size only on the spec it was decided on (compare-and-set), within min … max; a later put keeps it as the last action', () => {
		const action = {from: 3, to: 4, cpuPercent: 84, members: 3, windowSeconds: 60, reason: 'average CPU 84% …: grow 3 → 4'};
		const scaled = (basedOn: number, patch: Partial<typeof action> = {}, uid = 'abcdefgh') => ({v: PROTOCOL_VERSION, kind: 'group.scaled', ts: 50, name: 'web', uid, basedOn, action: {...action, ...patch}}) as const;
		let groups: ReadonlyMap<string, StoredGroup> = applyGroupRecord(new Map(), {v: PROTOCOL_VERSION, kind: 'group.put', ts: 1, spec: spec({size: 3})}, 7, 'ops');
		// Decided on an older version (an operator's put came between): every reader ignores it.
		expect(applyGroupRecord(groups, scaled(6), 8, 'agent')).toBe(groups);
		expect(applyGroupRecord(groups, scaled(7, {}, 'zzzzzzzz'), 8, 'agent')).toBe(groups);
		expect(applyGroupRecord(groups, scaled(7, {from: 2}), 8, 'agent')).toBe(groups);
		expect(applyGroupRecord(groups, scaled(7, {to: 11}), 8, 'agent')).toBe(groups);
		groups = applyGroupRecord(groups, scaled(7), 8, 'agent');
		expect(groups.get('web')).toEqual({spec: spec({size: 4}), version: 8, by: 'agent', ts: 50, lastScaling: {...action, at: 50}});
		// The same record read again (a second controller's, decided on version 7 too) changes nothing.
		expect(applyGroupRecord(groups, scaled(7), 9, 'agent')).toBe(groups);
		groups = applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'group.put', ts: 60, spec: spec({size: 4, image: 'other'})}, 10, 'ops');
		expect(groups.get('web')?.lastScaling).toEqual({...action, at: 50});
		// A group made anew under the name starts without one.
		groups = applyGroupRecord(groups, {v: PROTOCOL_VERSION, kind: 'group.put', ts: 70, spec: spec({uid: 'newuid00'})}, 11, 'ops');
		expect(groups.get('web')?.lastScaling).toBeUndefined();
	});

	it('refuses a size outside min … max, a bad name and a bad health check', () => {
		expect(groupSpecSchema.safeParse(spec({size: 11})).success).toBe(false);
		expect(groupSpecSchema.safeParse(spec({name: 'Web'})).success).toBe(false);
		expect(groupSpecSchema.safeParse(spec()).success).toBe(true);
		expect(parseHealthCheck('console:ok (')).toMatchObject({ok: false});
		expect(parseHealthCheck('tcp:22')).toEqual({ok: true, value: {kind: 'tcp', port: 22}});
		for (const bad of ['tcp:0', 'tcp:65536', 'tcp:', 'tcp:http', 'tcp:-1']) {
			expect(parseHealthCheck(bad)).toMatchObject({ok: false, error: expect.stringMatching(/tcp:PORT needs a port/)});
		}

		expect(parseHealthCheck('http:80')).toMatchObject({ok: false, error: expect.stringMatching(/expected none, console:REGEX or tcp:PORT/)});
		expect(parseHealthCheck('console:^tick \\d+')).toEqual({ok: true, value: {kind: 'console', pattern: '^tick \\d+'}});
	});
});
