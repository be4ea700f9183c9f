import {describe, expect, it} from 'vitest';
import {HostRoster} from '../source/broker/host-roster.js';
import type {HostStatus, KloudEvent} from '../source/protocol/index.js';

const status = (id: string): HostStatus => ({id, vmCount: 0, maxVms: 4, freeMemoryMb: 1, totalMemoryMb: 2, accel: 'tcg', images: [], heartbeatMs: 1000, startedAt: 0});
const beat = (id: string, patch: Partial<HostStatus> = {}): KloudEvent => ({v: 1, id: 'e', from: id, ts: 0, type: 'host.heartbeat', body: {...status(id), ...patch}});

describe('HostRoster', () => {
	it('knows a host from its heartbeat and forgets it after 2.5 silent intervals, but never within 10 s', () => {
		const roster = new HostRoster();
		expect(roster.observe(beat('b'), 0)).toBe(true);
		expect(roster.observe(beat('a'), 1000)).toBe(true);
		expect(roster.observe(beat('a'), 9000)).toBe(false);
		// 1 s heartbeats: 2.5 intervals would be 2.5 s, the 10 s floor keeps b until 10 s.
		expect(roster.live(10_000)).toEqual(['a', 'b']);
		expect(roster.live(10_100)).toEqual(['a']);
		const slow = new HostRoster();
		slow.observe(beat('c', {heartbeatMs: 8000}), 0);
		expect(slow.live(20_000)).toEqual(['c']);
		expect(slow.live(20_100)).toEqual([]);
	});

	it('drops a host at once when it says it is going down', () => {
		const roster = new HostRoster();
		roster.observe(beat('a'), 0);
		roster.observe({v: 1, id: 'e', from: 'a', ts: 0, type: 'host.down', body: {id: 'a'}}, 1);
		expect(roster.live(2)).toEqual([]);
	});
});
