import {describe, expect, it} from 'vitest';
import {formatDuration, formatHosts, formatVms, hostRows, imageRows} from '../source/format.js';
import type {Vm} from '../source/protocol/index.js';

const vm = (id: string, host: string, createdAt: number): Vm => ({id, host, image: 'demo', state: 'running', memoryMb: 256, cpus: 1, pid: 100, createdAt, uptimeSeconds: 75, ip: null, mac: null, exit: null});

describe('CLI formatting', () => {
	it.each([
		[null, '-'],
		[5, '5s'],
		[75, '1m15s'],
		[3 * 3600 + 120, '3h02m'],
		[2 * 86_400 + 3600, '2d01h'],
	])('formats %s seconds as %s', (seconds, text) => {
		expect(formatDuration(seconds)).toBe(text);
	});

	it('prints VMs as an aligned table sorted by host, then age', () => {
		expect(formatVms([vm('vm-bbbbbbbb', 'host-b', 1), {...vm('vm-cccccccc', 'host-a', 2), ip: '10.77.0.12'}, vm('vm-aaaaaaaa', 'host-a', 1)]).split('\n')).toEqual([
			'HOST    VM           IMAGE  STATE    IP          MEM   CPUS  PID  UPTIME',
			'host-a  vm-aaaaaaaa  demo   running  -           256M  1     100  1m15s',
			'host-a  vm-cccccccc  demo   running  10.77.0.12  256M  1     100  1m15s',
			'host-b  vm-bbbbbbbb  demo   running  -           256M  1     100  1m15s',
		]);
	});

	it('groups images by name with the hosts that have them', () => {
		expect(
			imageRows([
				{host: 'b', images: [{name: 'demo', sizeBytes: 10}], roster: []},
				{host: 'a', images: [{name: 'demo', sizeBytes: 10}, {name: 'alpine', sizeBytes: 5}], roster: []},
			]),
		).toEqual([
			{name: 'alpine', sizeBytes: 5, hosts: ['a']},
			{name: 'demo', sizeBytes: 10, hosts: ['a', 'b']},
		]);
	});
});

it('the hosts table says which host is cordoned', () => {
	const host = (id: string, cordoned?: boolean) => ({id, vmCount: 1, maxVms: 16, freeMemoryMb: 900, totalMemoryMb: 2000, accel: 'tcg' as const, images: ['demo'], heartbeatMs: 5000, startedAt: 0, ...(cordoned ? {cordoned} : {})});
	const table = formatHosts(hostRows([{host: host('a'), vms: [], roster: []}, {host: host('b', true), vms: [], roster: []}], ['c']));
	expect(table.split('\n').map(line => line.split(/\s+/).slice(0, 2).join(' '))).toEqual(['HOST STATUS', 'a up', 'b cordoned', 'c no']);
});
