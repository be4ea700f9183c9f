import {expect, it} from 'vitest';
import {replyNode} from '../source/broker/reply-publisher.js';

it('reads the node out of a Direct Reply-To address (what a reply that killed a connection marks down)', () => {
	// Two addresses RabbitMQ 3.10 handed out on one node (different requester channels), one on another.
	const a = 'amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxNjIyODU4MAAACtwAAAAAawzSYg==./Ui4cOVJ9jN/SbzXqwfcgg==';
	const b = 'amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxNjIyODU4MAAACwsAAAAAawzSYg==.aU5jATFcAU/us4q1DCl/rg==';
	expect(replyNode(a)).toBe('reply@16228580');
	expect(replyNode(b)).toBe(replyNode(a));
	const other = `amq.rabbitmq.reply-to.${Buffer.concat([Buffer.from([131, 88, 118, 0, 14]), Buffer.from('reply@99999999'), Buffer.alloc(12)]).toString('base64')}.key`;
	expect(replyNode(other)).toBe('reply@99999999');
	// Not an address, or not a pid inside: no node.
	expect(replyNode('vm-queue')).toBeUndefined();
	expect(replyNode('amq.rabbitmq.reply-to.bm90IGEgcGlk.key')).toBeUndefined();
	// Cut short or lying about its length (a requester writes its own address): no node, no throw.
	for (const bytes of [[131, 88], [131, 88, 118], [131, 88, 118, 0], [131, 88, 118, 0, 40, 65], [131, 103, 119], [131, 103, 119, 9, 65], [131, 88, 119, 0]]) {
		expect(replyNode(`amq.rabbitmq.reply-to.${Buffer.from(bytes).toString('base64')}.key`)).toBeUndefined();
	}
});
