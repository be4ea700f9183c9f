import {describe, expect, it} from 'vitest';
import {deadLetterAnswer, deathReason} from '../source/broker/dead-letters.js';
import {startQueueTtl} from '../source/broker/client.js';
import {START_DELIVERY_LIMIT, topology} from '../source/protocol/index.js';

const QUEUE = 'ns.start';
const start = (body: object) => Buffer.from(JSON.stringify({v: 1, id: 'r-1', from: 'kloud-tui@x', ts: 1, type: 'vm.start', body}));
// What RabbitMQ 3.10 puts on a message it dead-letters (measured: see test/e2e/reliability.test.ts).
const death = (reason: string, extra: object = {}) => ({'x-death': [{count: 1, reason, queue: QUEUE, exchange: '', 'routing-keys': [QUEUE], ...extra}], 'x-first-death-reason': reason});

describe('deathReason', () => {
	it.each([
		['an expired start with its TTL', death('expired', {'original-expiration': '1500'}), {reason: 'expired', originalExpirationMs: 1500}],
		['the delivery limit', death('delivery_limit'), {reason: 'delivery_limit'}],
		['a rejected message', death('rejected'), {reason: 'rejected'}],
		['a death in another queue only', {'x-death': [{reason: 'expired', queue: 'other'}]}, {reason: 'unknown'}],
		['no headers', undefined, {reason: 'unknown'}],
		['a forged x-death', {'x-death': 'forged'}, {reason: 'unknown'}],
		['an unknown reason', death('cosmic-ray'), {reason: 'unknown'}],
	])('reads %s', (_name, headers, expected) => {
		expect(deathReason(headers as Record<string, unknown> | undefined, QUEUE)).toEqual(expected);
	});
});

describe('deadLetterAnswer', () => {
	it.each([
		['an expired start', death('expired', {'original-expiration': '2000'}), start({image: 'blank'}), /^no host had capacity to take the start of a VM from image "blank" within 2\.0 s$/],
		['a start past the delivery limit', death('delivery_limit'), start({image: 'big', memoryMb: 4096}), new RegExp(`^no host had capacity for a VM from image "big" with 4096 MB: it was offered ${START_DELIVERY_LIMIT + 1} times and refused$`)],
		['a start dropped for queue length', death('maxlen'), start({image: 'blank'}), /start queue is full/],
	])('answers %s with no_capacity', (_name, headers, content, reason) => {
		const answer = deadLetterAnswer({headers, content, startQueue: QUEUE});
		expect(answer?.code).toBe('no_capacity');
		expect(answer?.reason).toMatch(reason);
	});

	it.each([
		['a rejected (malformed) message: it had its error reply', death('rejected'), start({image: 'blank'})],
		['a message that never died in the start queue', undefined, start({image: 'blank'})],
		['something that is not a start', death('expired'), Buffer.from('{"v":1,"id":"x","from":"y","ts":1,"type":"vm.list","body":{}}')],
		['garbage', death('expired'), Buffer.from('\u0000\u0001')],
	])('gives no answer to %s', (_name, headers, content) => {
		expect(deadLetterAnswer({headers, content, startQueue: QUEUE})).toBeUndefined();
	});
});

describe('startQueueTtl', () => {
	it.each([
		[30_000, 25_000],
		[8000, 4000],
		[4000, 2000],
		[500, 250],
		[1, 1],
	])('a start with %i ms left may wait %i ms in the queue', (remaining, ttl) => {
		expect(startQueueTtl(remaining)).toBe(ttl);
	});
});

describe('event routing keys', () => {
	const topo = topology('ns');
	it.each([
		['host.heartbeat', 'host-a', undefined, 'host.heartbeat.host-a'],
		['vm.started', 'host-a', 'alice', 'vm.started.alice.host-a'],
		['vm.stopped', 'host.b', 'bob', 'vm.stopped.bob.host.b'],
		['vm.crashed', 'host-a', null, 'vm.crashed.-.host-a'],
	] as const)('%s from %s owned by %s goes out as %s', (type, host, owner, key) => {
		expect(topo.eventKey(type, host, owner)).toBe(key);
	});
});
