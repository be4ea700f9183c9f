/** The events view's timeline, folded by the fleet reducer (source/state/timeline.ts, fleet.ts). */
import {describe, expect, it} from 'vitest';
import type {GroupSpec, KloudEvent, StoredGroup} from '../source/protocol/index.js';
import {fleetReducer, initialFleet, type FleetState} from '../source/state/fleet.js';
import {appendEntries, TIMELINE_LIMIT, type TimelineEntry} from '../source/state/timeline.js';
import {hostStatus, makeVm, NOW, snapshot} from './helpers/tui.js';

const event = (state: FleetState, at: number, body: Omit<KloudEvent, 'v' | 'id' | 'ts'>): FleetState =>
	fleetReducer(state, {type: 'kloud', at, event: {v: 1, id: 'e', ts: at, ...body} as KloudEvent});

const texts = (state: FleetState) => state.timeline.map(entry => entry.text);

function group(spec: Partial<GroupSpec>, version: number, by: string | null, ts: number): StoredGroup {
	return {spec: {name: 'web', uid: 'abcd1234', image: 'demo', size: 3, min: 1, max: 5, health: {kind: 'none'}, healthGraceSeconds: 90, hostGraceSeconds: 15, ...spec}, version, by, ts};
}

describe('the timeline', () => {
	it('tells crashes with their exit, stops, deletes, and who asked for what (refusals too)', () => {
		let state = fleetReducer(initialFleet(NOW), {type: 'round', at: NOW, snapshots: [snapshot('host-a', [])], missing: []});
		state = event(state, NOW + 1000, {type: 'vm.crashed', from: 'host-a', body: {vm: makeVm('vm-aaaaaaaa', 'host-a', {state: 'crashed', pid: null, exit: 'exit code 1', restarts: {count: 5, limit: 5}})}});
		state = event(state, NOW + 2000, {type: 'request.handled', from: 'host-a', body: {user: 'alice', request: 'vm.stop', vmId: 'vm-bbbbbbbb', ok: true, durationMs: 1234}});
		state = event(state, NOW + 3000, {type: 'request.handled', from: 'host-b', body: {user: 'bob', request: 'vm.start', detail: 'demo', ok: false, code: 'no_capacity', reason: 'host host-b is full (16 of 16 VMs)', durationMs: 3}});
		state = event(state, NOW + 3500, {type: 'request.handled', from: 'host-a', body: {user: 'kloud-agent', sender: 'kloud-controller@host-c', request: 'vm.delete', vmId: 'vm-bbbbbbbb', group: 'web', ok: true, durationMs: 300}});
		state = event(state, NOW + 4000, {type: 'vm.deleted', from: 'host-a', body: {vm: makeVm('vm-bbbbbbbb', 'host-a', {state: 'deleted', clientToken: 'grp:web:abcd1234:3:0:0'})}});
		state = event(state, NOW + 5000, {type: 'host.heartbeat', from: 'host-a', body: hostStatus('host-a')});
		expect(texts(state)).toEqual([
			'vm-aaaaaaaa crashed on host-a: exit code 1; gave up after restarts 5/5',
			'alice: stop vm-bbbbbbbb on host-a: done in 1.2 s',
			'bob: start demo on host-b: refused: no_capacity: host host-b is full (16 of 16 VMs)',
			'kloud-agent (controller on host-c): delete vm-bbbbbbbb on host-a (group web): done in 0.3 s',
			'vm-bbbbbbbb deleted on host-a',
		]);
		expect(state.timeline.map(entry => [entry.kind, entry.user, entry.isProblem])).toEqual([
			['vm', null, true],
			['request', 'alice', false],
			['request', 'bob', true],
			['request', 'kloud-agent', false],
			['vm', null, false],
		]);
		expect(state.timeline[4]!.group).toBe('web');
	});

	it('tells a host going down (said, or silent for a minute) and coming back, once each', () => {
		let state = fleetReducer(initialFleet(NOW), {type: 'round', at: NOW, snapshots: [snapshot('host-a', []), snapshot('host-b', [])], missing: []});
		state = event(state, NOW + 1000, {type: 'host.down', from: 'host-a', body: {id: 'host-a'}});
		state = fleetReducer(state, {type: 'round', at: NOW + 2000, snapshots: [snapshot('host-a', [])], missing: ['host-b']});
		state = event(state, NOW + 60_000, {type: 'host.heartbeat', from: 'host-a', body: hostStatus('host-a')});
		state = fleetReducer(state, {type: 'tick', now: NOW + 70_000});
		const same = fleetReducer(state, {type: 'tick', now: NOW + 71_000});
		expect(texts(same)).toEqual(texts(state));
		state = event(state, NOW + 80_000, {type: 'host.heartbeat', from: 'host-b', body: hostStatus('host-b')});
		state = event(state, NOW + 81_000, {type: 'host.heartbeat', from: 'host-c', body: hostStatus('host-c')});
		expect(texts(state)).toEqual(['host-a down: its agent stopped', 'host-a back after 2 s', 'host-b down: silent for 70 s', 'host-b back after 80 s', 'host-c joined']);
	});

	it('tells group changes from the groups stream at their own times, with who made them', () => {
		let state = initialFleet(NOW);
		state = fleetReducer(state, {type: 'groups', at: NOW, groups: new Map([['web', group({}, 10, 'ops', NOW - 60_000)]])});
		state = fleetReducer(state, {type: 'groups', at: NOW, groups: new Map([['web', group({size: 5}, 12, 'kloud-agent', NOW - 30_000)]])});
		expect(state.groups.get('web')!.lastScale).toEqual({from: 3, to: 5, by: 'kloud-agent', at: NOW - 30_000});
		// A controller that scales on load says why (the groups stream's `lastScaling`, from controllers that have it).
		const onLoad = {...group({size: 4}, 14, 'kloud-agent', NOW - 10_000), lastScaling: {from: 5, to: 4, cpuPercent: 12.4, members: 5, windowSeconds: 60, reason: 'below 35% for 3 windows', at: NOW - 10_000}};
		state = fleetReducer(state, {type: 'groups', at: NOW, groups: new Map([['web', onLoad]])});
		state = fleetReducer(state, {type: 'groups', at: NOW, groups: new Map()});
		expect(texts(state)).toEqual([
			'group web created by ops: 3 × demo (min 1, max 5)',
			'group web scaled 3 → 5 by kloud-agent',
			'group web scaled 5 → 4 by kloud-agent: cpu 12% over 5 members (below 35% for 3 windows)',
			'group web deleted: the controller deletes its members',
		]);
	});

	it('keeps entries in time order and only the newest', () => {
		const entry = (at: number): TimelineEntry => ({at, kind: 'host', type: 'host.up', host: 'h', vm: null, group: null, user: null, text: String(at), isProblem: false});
		expect(appendEntries([entry(1), entry(5)], [entry(3)]).map(one => one.at)).toEqual([1, 3, 5]);
		const full = appendEntries([], Array.from({length: TIMELINE_LIMIT}, (_, index) => entry(index)));
		expect(appendEntries(full, [entry(TIMELINE_LIMIT)]).map(one => one.at).slice(0, 1)).toEqual([1]);
		expect(appendEntries(full, [])).toBe(full);
	});
});
