/** The pure decisions of a live migration: who may leave, where to, who may take it in. */
import {describe, expect, it} from 'vitest';
import {arrivalProblem, departureProblem, pickDestination, randomPort} from '../agent/migration-plan.js';
import type {HostStatus} from '../source/protocol/index.js';

const vm = {id: 'vm-abcdefgh', image: 'demo', memoryMb: 256, phase: 'running' as const, network: 'private'};

function host(id: string, extra: Partial<HostStatus> = {}): HostStatus {
	return {id, vmCount: 0, maxVms: 16, freeMemoryMb: 4096, totalMemoryMb: 8192, accel: 'tcg', images: ['demo'], heartbeatMs: 5000, startedAt: 0, ...extra};
}

describe('departureProblem', () => {
	it('lets a running VM go, not a stopped one nor a user-mode one', () => {
		expect(departureProblem(vm, 'a')).toBeUndefined();
		expect(departureProblem({...vm, phase: 'stopped'}, 'a')).toMatchObject({code: 'invalid_state', reason: expect.stringMatching(/it is stopped, and only a running VM migrates live/)});
		expect(departureProblem({...vm, network: 'user'}, 'a')).toMatchObject({code: 'bad_request', reason: expect.stringMatching(/user-mode networking/)});
	});
});

describe('pickDestination', () => {
	it('refuses the same host and a host that is not live', () => {
		expect(pickDestination(vm, 'a', [host('b')], 'a')).toMatchObject({ok: false, code: 'bad_request', reason: expect.stringMatching(/on host a already/)});
		expect(pickDestination(vm, 'a', [host('b')], 'z')).toMatchObject({ok: false, reason: 'no live host z to migrate VM vm-abcdefgh to (live: b)'});
	});

	it('takes a named live host as it is (it checks itself), and otherwise the one with the most free memory that fits', () => {
		expect(pickDestination(vm, 'a', [host('b', {cordoned: true})], 'b')).toEqual({ok: true, host: 'b'});
		const peers = [host('b', {freeMemoryMb: 1000}), host('c', {freeMemoryMb: 9000, cordoned: true}), host('d', {freeMemoryMb: 8000, images: []}), host('e', {freeMemoryMb: 3000}), host('f', {freeMemoryMb: 7000, vmCount: 16})];
		expect(pickDestination(vm, 'a', peers, undefined)).toEqual({ok: true, host: 'e'});
	});

	it('says why no host fits', () => {
		expect(pickDestination(vm, 'a', [], undefined)).toMatchObject({ok: false, code: 'no_capacity', reason: expect.stringMatching(/no other live host/)});
		expect(pickDestination(vm, 'a', [host('b', {freeMemoryMb: 100})], undefined)).toMatchObject({ok: false, code: 'no_capacity', reason: expect.stringMatching(/none of b is uncordoned with the image and room/)});
	});
});

describe('arrivalProblem', () => {
	const base = {hostId: 'b', vmId: 'vm-abcdefgh', image: 'demo', isCordoned: false, migrationAddress: '10.0.0.2', hasVm: false, hasImage: true, imageNames: ['demo'], capacityProblem: undefined};
	it('takes a VM in when nothing stands in the way', () => {
		expect(arrivalProblem(base)).toBeUndefined();
	});

	it('names the first problem: cordoned, no address, VM there, no image, no room', () => {
		expect(arrivalProblem({...base, isCordoned: true, hasImage: false})).toMatchObject({code: 'no_capacity', reason: expect.stringMatching(/host b is cordoned/)});
		expect(arrivalProblem({...base, migrationAddress: undefined})).toMatchObject({code: 'bad_request', reason: expect.stringMatching(/--migration-address/)});
		expect(arrivalProblem({...base, hasVm: true})).toMatchObject({code: 'invalid_state'});
		expect(arrivalProblem({...base, hasImage: false, imageNames: ['blank']})).toMatchObject({code: 'unknown_image', reason: 'host b has no image "demo" for VM vm-abcdefgh (it has: blank)'});
		expect(arrivalProblem({...base, capacityProblem: 'out of memory'})).toMatchObject({code: 'no_capacity', reason: 'host b cannot take VM vm-abcdefgh: out of memory'});
	});
});

it('randomPort stays in the dynamic range', () => {
	expect(randomPort(() => 0)).toBe(49_152);
	expect(randomPort(() => 0.999_999)).toBeLessThan(61_000);
});
