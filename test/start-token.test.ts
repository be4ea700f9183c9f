import {describe, expect, it} from 'vitest';
import {messageToken, startToken, tutorialStartToken, type MessageIdentity} from '../agent/start-token.js';
import {UnsettledStarts} from '../agent/tutorial.js';
import type {Vm} from '../source/protocol/index.js';

const start = (id: string) => JSON.stringify({v: 1, id, from: 'kloud-tui@x', ts: 1, type: 'vm.start', body: {image: 'blank'}});
const base: MessageIdentity = {body: start('r-1'), correlationId: 'r-1', replyTo: 'amq.rabbitmq.reply-to.abc', userId: 'alice'};

describe('the token of a start without one', () => {
	it.each<[string, MessageIdentity, MessageIdentity, boolean]>([
		['a redelivery (same body and properties) gets the same token', base, {...base}, true],
		['another request (its own id) gets another token', base, {...base, body: start('r-2'), correlationId: 'r-2'}, false],
		['another reply address gets another token', base, {...base, replyTo: 'amq.rabbitmq.reply-to.def'}, false],
		['another user gets another token', base, {...base, userId: 'bob'}, false],
		['no correlation id vs one', base, {...base, correlationId: undefined}, false],
		['a messageId decides alone: same id, same token', {...base, messageId: 'm-1'}, {...base, body: start('r-9'), messageId: 'm-1'}, true],
		['different messageIds differ', {...base, messageId: 'm-1'}, {...base, messageId: 'm-2'}, false],
		['the same messageId from another user differs', {...base, messageId: 'm-1'}, {...base, messageId: 'm-1', userId: 'bob'}, false],
		['parts are length-prefixed: ("ab","c") ≠ ("a","bc")', {body: 'x', correlationId: 'ab', replyTo: 'c'}, {body: 'x', correlationId: 'a', replyTo: 'bc'}, false],
		['bytes and the same string are one body', {body: 'abc'}, {body: new TextEncoder().encode('abc')}, true],
	])('%s', (_name, a, b, isSame) => {
		expect(messageToken(a) === messageToken(b)).toBe(isSame);
	});

	it.each<[string, string | undefined, MessageIdentity, RegExp, boolean]>([
		["the caller's token wins", 'tok-1', base, /^tok-1$/, true],
		['derived from the message otherwise (a kloud request is unique: it carries its id)', undefined, base, /^msg:[\w-]{32}$/, true],
		['with a messageId', undefined, {...base, messageId: 'm'}, /^msg:id:[\w-]{32}$/, true],
	])('%s', (_name, clientToken, identity, pattern, isUnique) => {
		const token = startToken(clientToken, identity);
		expect(token.token).toMatch(pattern);
		expect(token.token.length).toBeLessThanOrEqual(64);
		expect(token.isUnique).toBe(isUnique);
	});

	it.each<[string, MessageIdentity, boolean]>([
		["the tutorial's start-vm (no id, no reply address) is not unique", {body: '{"command":"start-vm","options":{"image":"blank"}}'}, false],
		['nor with only a reply address (one per channel, shared by its messages)', {body: '{}', replyTo: 'amq.rabbitmq.reply-to.x'}, false],
		['a correlation id makes it unique', {body: '{}', correlationId: 'c'}, true],
		['a message id makes it unique', {body: '{}', messageId: 'm'}, true],
		['an empty message id does not', {body: '{}', messageId: ''}, false],
	])('tutorial: %s', (_name, identity, isUnique) => {
		expect(tutorialStartToken(identity).isUnique).toBe(isUnique);
	});
});

describe('unsettled tutorial starts', () => {
	const vm = (id: string) => Promise.resolve({ok: true as const, value: {id} as Vm});
	const settled = (value: boolean) => Promise.resolve(value);
	const never = new Promise<boolean>(() => {});
	const tick = async () => new Promise(resolve => setTimeout(resolve, 0));

	it('a redelivery claims the start of a delivery that did not settle, once', async () => {
		const starts = new UnsettledStarts();
		const first = vm('vm-aaaaaaaa');
		starts.track('t', first, settled(false));
		await tick();
		expect(starts.claim('t', never)).toBe(first);
		expect(starts.claim('t', never)).toBeUndefined();
	});

	it('a settled delivery leaves nothing to claim: the next identical message makes its own VM', async () => {
		const starts = new UnsettledStarts();
		starts.track('t', vm('vm-aaaaaaaa'), settled(true));
		await tick();
		expect(starts.claim('t', never)).toBeUndefined();
		expect(starts.size).toBe(0);
	});

	it('a claim whose own delivery does not settle is given back for the next redelivery', async () => {
		const starts = new UnsettledStarts();
		const first = vm('vm-aaaaaaaa');
		starts.track('t', first, never);
		expect(starts.claim('t', settled(false))).toBe(first);
		await tick();
		expect(starts.claim('t', settled(true))).toBe(first);
		await tick();
		expect(starts.claim('t', never)).toBeUndefined();
	});

	it('other content is never claimed', () => {
		const starts = new UnsettledStarts();
		starts.track('t', vm('vm-aaaaaaaa'), never);
		expect(starts.claim('u', never)).toBeUndefined();
	});
});
