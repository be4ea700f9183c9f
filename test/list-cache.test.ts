/** Conditional list rounds: the agent's version of its VM list, its reply, and the requester's cache. */
import {describe, expect, it} from 'vitest';
import {listReply, vmsVersion} from '../agent/list-version.js';
import {VmListCache} from '../source/broker/list-cache.js';
import {parseReplyValue, type HostSnapshot, type Vm} from '../source/protocol/index.js';

const vm = (id: string, patch: Partial<Vm> = {}): Vm => ({id, host: 'host-a', image: 'demo', state: 'running', memoryMb: 256, cpus: 1, pid: 100, createdAt: 1, uptimeSeconds: 10, ip: null, mac: null, exit: null, ...patch});
const snapshot = (vms: Vm[], patch: Partial<HostSnapshot> = {}): HostSnapshot => ({
	host: {id: 'host-a', vmCount: vms.length, maxVms: 8, freeMemoryMb: 100, totalMemoryMb: 200, accel: 'tcg', images: [], heartbeatMs: 5000, startedAt: 1},
	vms,
	roster: ['host-a'],
	...patch,
});

describe('the agent\'s VM list version', () => {
	it('ignores uptime (an idle host stays unchanged) and changes with anything else', () => {
		const base = vmsVersion([vm('vm-aaaaaaaa')]);
		expect(base).toMatch(/^[\w-]{22}$/);
		expect(vmsVersion([vm('vm-aaaaaaaa', {uptimeSeconds: 999})])).toBe(base);
		expect(vmsVersion([vm('vm-aaaaaaaa', {state: 'crashed', exit: 'signal SIGKILL'})])).not.toBe(base);
		expect(vmsVersion([vm('vm-aaaaaaaa', {ip: '10.0.0.2'})])).not.toBe(base);
		expect(vmsVersion([vm('vm-aaaaaaaa'), vm('vm-bbbbbbbb')])).not.toBe(base);
		expect(vmsVersion([])).not.toBe(base);
	});

	it('answers unchanged, without VMs, only to a requester holding this host\'s current version', () => {
		const full = snapshot([vm('vm-aaaaaaaa')]);
		const version = vmsVersion(full.vms);
		expect(listReply(full, 'host-a', {})).toEqual({...full, vmsVersion: version});
		expect(listReply(full, 'host-a', {known: {'host-a': 'an-older-version'}})).toEqual({...full, vmsVersion: version});
		expect(listReply(full, 'host-a', {known: {'host-b': version}})).toEqual({...full, vmsVersion: version});
		const unchanged = listReply(full, 'host-a', {known: {'host-a': version}});
		expect(unchanged).toEqual({...full, vms: [], vmsVersion: version, vmsUnchanged: true});
		// And it is a valid reply on the wire.
		expect(parseReplyValue('vm.list', unchanged).ok).toBe(true);
	});

	it('leaves load out of the version: an unchanged reply carries each VM\'s load instead', () => {
		const load = {cpuPercent: 12.5, rssBytes: 100, sampledAt: 5};
		const full = snapshot([vm('vm-aaaaaaaa', {load}), vm('vm-bbbbbbbb', {state: 'stopped', uptimeSeconds: null})]);
		const version = vmsVersion(full.vms);
		expect(vmsVersion([vm('vm-aaaaaaaa', {load: {...load, cpuPercent: 99}}), vm('vm-bbbbbbbb', {state: 'stopped', uptimeSeconds: null})])).toBe(version);
		const unchanged = listReply(full, 'host-a', {known: {'host-a': version}});
		expect(unchanged).toEqual({...full, vms: [], vmsVersion: version, vmsUnchanged: true, loads: {'vm-aaaaaaaa': load}});
		expect(parseReplyValue('vm.list', unchanged).ok).toBe(true);
	});

	it('refuses, on the wire, an "unchanged" list that carries VMs or no version', () => {
		expect(parseReplyValue('vm.list', {...snapshot([vm('vm-aaaaaaaa')]), vmsVersion: 'v1', vmsUnchanged: true})).toMatchObject({ok: false});
		expect(parseReplyValue('vm.list', {...snapshot([]), vmsUnchanged: true})).toMatchObject({ok: false});
	});
});

describe('the requester\'s VM list cache', () => {
	it('keeps versioned lists, sends their versions as known, and fills unchanged replies in with uptime aged', () => {
		const cache = new VmListCache();
		expect(cache.known()).toEqual({});
		const full = snapshot([vm('vm-aaaaaaaa', {uptimeSeconds: 10}), vm('vm-bbbbbbbb', {state: 'crashed', uptimeSeconds: null})], {vmsVersion: 'v1'});
		expect(cache.resolve(full, 1_000)).toBe(full);
		expect(cache.known()).toEqual({'host-a': 'v1'});

		const filled = cache.resolve(snapshot([], {vmsVersion: 'v1', vmsUnchanged: true}), 4_000);
		expect(filled?.vms.map(entry => [entry.id, entry.uptimeSeconds])).toEqual([
			['vm-aaaaaaaa', 13],
			['vm-bbbbbbbb', null],
		]);
		expect(filled?.vmsUnchanged).toBeUndefined();
		// Aged from when the list came, not from the last fill: no drift over many rounds.
		expect(cache.resolve(snapshot([], {vmsVersion: 'v1', vmsUnchanged: true}), 61_000)?.vms[0]?.uptimeSeconds).toBe(70);
	});

	it('fills unchanged replies in with the fresh load they carry, and drops a load no longer sent', () => {
		const cache = new VmListCache();
		const old = {cpuPercent: 90, rssBytes: 100, sampledAt: 1};
		cache.resolve(snapshot([vm('vm-aaaaaaaa', {load: old}), vm('vm-bbbbbbbb', {load: old})], {vmsVersion: 'v1'}), 0);
		const fresh = {cpuPercent: 3, rssBytes: 120, sampledAt: 2};
		const filled = cache.resolve(snapshot([], {vmsVersion: 'v1', vmsUnchanged: true, loads: {'vm-aaaaaaaa': fresh}}), 2000);
		expect(filled?.vms.map(entry => entry.load)).toEqual([fresh, undefined]);
		expect(filled).not.toHaveProperty('loads');
	});

	it('refuses an unchanged reply for a list it does not hold, and forgets that host so the next round asks for all', () => {
		const cache = new VmListCache();
		cache.resolve(snapshot([vm('vm-aaaaaaaa')], {vmsVersion: 'v1'}), 0);
		expect(cache.resolve(snapshot([], {vmsVersion: 'v2', vmsUnchanged: true}), 1000)).toBeUndefined();
		expect(cache.known()).toEqual({});
		expect(new VmListCache().resolve(snapshot([], {vmsVersion: 'v1', vmsUnchanged: true}), 0)).toBeUndefined();
	});

	it('forgets a host whose list came without a version, and hosts gone from the rosters', () => {
		const cache = new VmListCache();
		cache.resolve(snapshot([vm('vm-aaaaaaaa')], {vmsVersion: 'v1'}), 0);
		cache.resolve({...snapshot([], {vmsVersion: 'w1'}), host: {...snapshot([]).host, id: 'host-b'}}, 0);
		expect(Object.keys(cache.known()).sort()).toEqual(['host-a', 'host-b']);
		cache.resolve(snapshot([vm('vm-aaaaaaaa')]), 0);
		expect(cache.known()).toEqual({'host-b': 'w1'});
		cache.retain(new Set(['host-a']));
		expect(cache.known()).toEqual({});
	});
});
