import {describe, expect, it} from 'vitest';
import {hostsWithRoomFor, type HostStatus} from '../source/protocol/index.js';

function host(id: string, overrides: Partial<HostStatus> = {}): HostStatus {
	return {id, vmCount: 0, maxVms: 16, freeMemoryMb: 4096, totalMemoryMb: 8192, accel: 'tcg', images: ['demo'], heartbeatMs: 5000, startedAt: 0, ...overrides};
}

describe('hosts a start can go to directly (when the start queue refuses it)', () => {
	it('leaves out cordoned and full hosts and those without the image, room, or vCPUs', () => {
		const hosts = [
			host('ok'),
			host('cordoned', {cordoned: true}),
			host('no-image', {images: ['other']}),
			host('full', {vmCount: 16}),
			host('no-memory', {memoryBudgetMb: 1024, memoryCommittedMb: 1000}),
			host('no-cpus', {cpuBudget: 4, cpusCommitted: 4}),
		];
		expect(hostsWithRoomFor(hosts, {image: 'demo', memoryMb: 256, cpus: 1})).toEqual(['ok']);
	});

	it('orders by free memory (by the budget where the host reports one), then by id', () => {
		const hosts = [host('b', {freeMemoryMb: 1000}), host('a', {freeMemoryMb: 1000}), host('c', {memoryBudgetMb: 8000, memoryCommittedMb: 1000}), host('d', {freeMemoryMb: 500})];
		expect(hostsWithRoomFor(hosts, {image: 'demo'})).toEqual(['c', 'a', 'b', 'd']);
	});

	it('no host has room: none', () => {
		expect(hostsWithRoomFor([host('full', {vmCount: 16})], {image: 'demo'})).toEqual([]);
		expect(hostsWithRoomFor([], {image: 'demo'})).toEqual([]);
	});
});
