import {describe, expect, it} from 'vitest';
import {fleetReducer, hostHealth, initialFleet, type FleetState} from '../source/state/fleet.js';
import {makeVm, NOW, snapshot} from './helpers/tui.js';

const round = (state: FleetState, at: number, snapshots: ReturnType<typeof snapshot>[], missing: string[] = []) =>
	fleetReducer(state, {type: 'round', at, snapshots, missing});

describe('fleetReducer', () => {
	it("replaces an answering host's rows with its snapshot and keeps a silent host's rows, stale", () => {
		let state = round(initialFleet(NOW), NOW, [snapshot('a', [makeVm('vm-aaaaaaaa', 'a'), makeVm('vm-abababab', 'a')]), snapshot('b', [makeVm('vm-bbbbbbbb', 'b')])]);
		state = round(state, NOW + 2000, [snapshot('a', [makeVm('vm-abababab', 'a')])], ['b']);
		expect([...state.vms.keys()].sort()).toEqual(['vm-abababab', 'vm-bbbbbbbb']);
		expect(state.hosts.get('b')).toMatchObject({isStale: true, lastAnsweredAt: NOW});
		expect(state.hosts.get('a')).toMatchObject({isStale: false, lastAnsweredAt: NOW + 2000});
		expect(hostHealth(state.hosts.get('b')!, NOW + 30_000)).toBe('stale');
		expect(hostHealth(state.hosts.get('b')!, NOW + 61_000)).toBe('down');
		expect(hostHealth(state.hosts.get('a')!, NOW + 30_000)).toBe('up');
	});

	it('adds a started or crashed VM between rounds, keeps a stopped one as stopped and removes a deleted one', () => {
		let state = round(initialFleet(NOW), NOW, [snapshot('a', [])]);
		const vm = makeVm('vm-cccccccc', 'a');
		state = fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'a', ts: NOW, type: 'vm.started', body: {vm}}});
		expect(state.vms.get('vm-cccccccc')).toEqual(vm);
		state = fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'a', ts: NOW, type: 'vm.crashed', body: {vm: {...vm, state: 'crashed'}}}});
		expect(state.vms.get('vm-cccccccc')?.state).toBe('crashed');
		const stopped = {...vm, state: 'stopped' as const, pid: null, exit: 'powered off'};
		state = fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'a', ts: NOW, type: 'vm.stopped', body: {vm: stopped}}});
		expect(state.vms.get('vm-cccccccc')).toEqual(stopped);
		state = fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'a', ts: NOW, type: 'vm.rebooted', body: {vm}}});
		expect(state.vms.get('vm-cccccccc')?.state).toBe('running');
		state = fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'a', ts: NOW, type: 'vm.deleted', body: {vm: {...stopped, state: 'deleted'}}}});
		expect(state.vms.size).toBe(0);
	});

	it('marks a host that says it is going down as down at once', () => {
		let state = round(initialFleet(NOW), NOW, [snapshot('a', [])]);
		state = fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'a', ts: NOW, type: 'host.down', body: {id: 'a'}}});
		expect(hostHealth(state.hosts.get('a')!, NOW)).toBe('down');
	});

	it('remembers a broker drop from its first loss (retries keep it) until the connection is back', () => {
		const lost = (error: string) => ({type: 'connection', connection: {status: 'disconnected', error, retryAt: null}}) as const;
		let state = fleetReducer(initialFleet(NOW), {type: 'connection', connection: {status: 'connected'}});
		expect(state.lastDrop).toBeNull();
		state = fleetReducer(state, lost('closed'));
		state = fleetReducer(fleetReducer(state, {type: 'tick', now: NOW + 500}), lost('refused'));
		expect(state.lastDrop).toEqual({error: 'refused', lostAt: NOW, backAt: null});
		state = fleetReducer(fleetReducer(state, {type: 'tick', now: NOW + 900}), {type: 'connection', connection: {status: 'connected'}});
		expect(state.lastDrop).toEqual({error: 'refused', lostAt: NOW, backAt: NOW + 900});
		state = fleetReducer(fleetReducer(state, {type: 'tick', now: NOW + 5000}), lost('again'));
		expect(state.lastDrop).toEqual({error: 'again', lostAt: NOW + 5000, backAt: null});
	});

	it('returns the same state object for events that change nothing', () => {
		const state = round(initialFleet(NOW), NOW, [snapshot('a', [])]);
		expect(fleetReducer(state, {type: 'tick', now: NOW})).toBe(state);
		// The TUI's own echo of a reply (id `local`) for a VM it no longer shows: nothing (the agent's event goes into the timeline).
		expect(fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'local', from: 'a', ts: NOW, type: 'vm.deleted', body: {vm: makeVm('vm-zzzzzzzz', 'a')}}})).toBe(state);
		expect(fleetReducer(state, {type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: 'x', ts: NOW, type: 'host.hello', body: {id: 'x'}}})).toBe(state);
		const connected = fleetReducer(state, {type: 'connection', connection: {status: 'connected'}});
		expect(fleetReducer(connected, {type: 'connection', connection: {status: 'connected'}})).toBe(connected);
	});

	it('follows the TUI to another broker node of a cluster (the header names it), and ignores a repeat', () => {
		const onFirst = fleetReducer(initialFleet(NOW), {type: 'connection', connection: {status: 'connected', broker: '127.0.0.1:5701'}});
		expect(fleetReducer(onFirst, {type: 'connection', connection: {status: 'connected', broker: '127.0.0.1:5701'}})).toBe(onFirst);
		const onSecond = fleetReducer(onFirst, {type: 'connection', connection: {status: 'connected', broker: '127.0.0.1:5702'}});
		expect(onSecond.connection).toEqual({status: 'connected', broker: '127.0.0.1:5702'});
	});
});

describe('a VM two hosts list at once (mid-migration)', () => {
	const onSource = makeVm('vm-mmmmmmmm', 'a', {migration: {to: 'b', phase: 'switching', percent: 100, startedAt: NOW}});
	const onDestination = makeVm('vm-mmmmmmmm', 'b', {pid: 200});

	it('is one row, the destination\'s, whichever host answers first, and when the source went silent with its copy marked', () => {
		for (const snapshots of [[snapshot('b', [onDestination]), snapshot('a', [onSource])], [snapshot('a', [onSource]), snapshot('b', [onDestination])]]) {
			expect([...round(initialFleet(NOW), NOW, snapshots).vms.values()]).toEqual([onDestination]);
		}

		let state = round(initialFleet(NOW), NOW, [snapshot('a', [onSource]), snapshot('b', [])]);
		expect(state.vms.get('vm-mmmmmmmm')?.host).toBe('a');
		state = round(state, NOW + 1000, [snapshot('b', [onDestination])], ['a']);
		expect([...state.vms.values()]).toEqual([onDestination]);
	});
});
