import {describe, expect, it} from 'vitest';
import {HostRoster} from '../source/broker/host-roster.js';
import {defaultUnderlayCidr, isInCidr, UnderlayFilter} from '../agent/underlay.js';
import {isTrustedEvent, MAX_HEARTBEAT_MS, MAX_ROSTER_HOSTS, parseAgentUsers, type HostStatus, type KloudEvent} from '../source/protocol/index.js';

const beat = (id: string, patch: Partial<HostStatus> = {}): KloudEvent => ({
	v: 1,
	id: 'e',
	from: id,
	ts: 0,
	type: 'host.heartbeat',
	body: {id, vmCount: 0, maxVms: 4, freeMemoryMb: 1, totalMemoryMb: 2, accel: 'tcg', images: [], heartbeatMs: 1000, startedAt: 0, ...patch},
});

describe('which events count', () => {
	const agents = new Set(['kloud-agent', 'ops']);
	it.each([
		['an agent user', 'kloud-agent', true],
		['another agent user', 'ops', true],
		['a tenant', 'alice', false],
		['no user id (the broker does not fill it in)', undefined, false],
		['a non-string user id', 42, false],
		['an empty user id', '', false],
	])('%s → %s', (_name, userId, expected) => {
		expect(isTrustedEvent(userId, agents)).toBe(expected);
	});

	it.each([
		['U1,U2', 'me', ['U1', 'U2']],
		[' U1 , ,U2 ', 'me', ['U1', 'U2']],
		['', 'me', ['me']],
		[undefined, 'me', ['me']],
	])('--agent-users %j (own user %s) → %j', (list, fallback, expected) => {
		expect([...parseAgentUsers(list, fallback)]).toEqual(expected);
	});
});

describe('roster caps', () => {
	it('counts a heartbeat period for at most 60 s: a host announcing 2.5 days is forgotten after 2.5 minutes', () => {
		const roster = new HostRoster();
		roster.observe(beat('ghost', {heartbeatMs: 216_000_000}), 0);
		expect(roster.live(MAX_HEARTBEAT_MS * 2.5)).toEqual(['ghost']);
		expect(roster.live(MAX_HEARTBEAT_MS * 2.5 + 1)).toEqual([]);
	});

	it(`keeps at most ${MAX_ROSTER_HOSTS} hosts; known ones still refresh`, () => {
		const roster = new HostRoster();
		for (let index = 0; index < MAX_ROSTER_HOSTS; index++) {
			roster.observe(beat(`h${index}`), 0);
		}

		expect(roster.observe(beat('one-too-many'), 1)).toBe(false);
		expect(roster.live(1)).toHaveLength(MAX_ROSTER_HOSTS);
		expect(roster.live(1)).not.toContain('one-too-many');
		roster.observe(beat('h0'), 20_000);
		expect(roster.live(20_000)).toEqual(['h0']);
	});
});

describe('underlay addresses', () => {
	it.each([
		['192.0.2.7', '192.0.2.0/24', true],
		['192.0.3.7', '192.0.2.0/24', false],
		['10.1.2.3', '10.0.0.0/8', true],
		['203.0.113.66', '10.0.0.0/8', false],
		['10.0.0.1', '10.0.0.1/32', true],
		['not-an-address', '10.0.0.0/8', false],
	])('%s in %s → %s', (address, cidr, expected) => {
		expect(isInCidr(address, cidr)).toBe(expected);
	});

	it('defaults to the /24 around this host\'s own underlay, and to nothing without one', () => {
		expect(defaultUnderlayCidr('192.0.2.1')).toBe('192.0.2.0/24');
		expect(defaultUnderlayCidr(undefined)).toBeUndefined();
	});

	it('keeps peers inside the CIDR and warns once per address it ignores', () => {
		const warnings: object[] = [];
		const filter = new UnderlayFilter('192.0.2.0/24', {warn: object => warnings.push(object)});
		expect(filter.accepts({hostId: 'b', underlay: '192.0.2.2'})).toBe(true);
		expect(filter.accepts({hostId: 'ghost', underlay: '203.0.113.66'})).toBe(false);
		expect(filter.accepts({hostId: 'ghost', underlay: '203.0.113.66'})).toBe(false);
		expect(warnings).toEqual([{host: 'ghost', underlay: '203.0.113.66', underlayCidr: '192.0.2.0/24'}]);
		expect(new UnderlayFilter(undefined, {warn() {}}).accepts({hostId: 'b', underlay: '192.0.2.2'})).toBe(false);
	});
});
