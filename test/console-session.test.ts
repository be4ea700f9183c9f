/** One VM's console sessions without I/O: the tail, the writer's seat, drops and expiry. */
import {Buffer} from 'node:buffer';
import {describe, expect, it} from 'vitest';
import {CONSOLE_TAIL_BYTES, MAX_FRAME_BYTES, VmConsole} from '../agent/console-session.js';
import {consoleFrameSchema, type ConsoleFrame} from '../source/protocol/index.js';

/** Session ids are 32 hex digits. */
const [S1, S2, S3, S9] = ['1', '2', '3', '9'].map(digit => digit.repeat(32)) as [string, string, string, string];

type Sent = {readonly output: string; readonly frame: ConsoleFrame};

function setup(options: {readonly refuse?: (output: string) => boolean} = {}) {
	const sent: Sent[] = [];
	const vm = new VmConsole('vm-abcdefgh', (output, frame) => {
		// Every frame the agent makes must be one the viewer's parser takes.
		expect(consoleFrameSchema.safeParse(frame).success).toBe(true);
		if (options.refuse?.(output)) {
			return false;
		}

		sent.push({output, frame});
		return true;
	});
	const to = (output: string) => sent.filter(entry => entry.output === output).map(entry => entry.frame);
	const textTo = (output: string) =>
		to(output)
			.map(frame => (frame.type === 'console.output' ? Buffer.from(frame.data, 'base64').toString() : ''))
			.join('');
	return {vm, sent, to, textTo};
}

const attach = (id: string, output: string, write: boolean, extra: {user?: string | null; tailBytes?: number; now?: number} = {}) => ({
	id,
	output,
	write,
	user: extra.user === undefined ? 'alice' : extra.user,
	tailBytes: extra.tailBytes ?? 4096,
	now: extra.now ?? 0,
});

describe('VmConsole', () => {
	it('sends a new viewer the recent output first, then what the guest says next, numbered from 0', () => {
		const {vm, to, textTo} = setup();
		vm.output(Buffer.from('boot\r\nroot@kloud:/# '));
		const {tailFrames} = vm.attach(attach(S1, 'q1', false));
		expect(tailFrames).toBe(1);
		vm.output(Buffer.from('ls\r\n'));
		expect(textTo('q1')).toBe('boot\r\nroot@kloud:/# ls\r\n');
		expect(to('q1').map(frame => frame.seq)).toEqual([0, 1]);
	});

	it('sends no tail when there is none or none is asked for', () => {
		const {vm, to} = setup();
		expect(vm.attach(attach(S1, 'q1', false)).tailFrames).toBe(0);
		vm.output(Buffer.from('x'));
		expect(vm.attach(attach(S2, 'q2', false, {tailBytes: 0})).tailFrames).toBe(0);
		expect(to('q2')).toEqual([]);
	});

	it('keeps at most CONSOLE_TAIL_BYTES of output, and sends a large tail in frames of MAX_FRAME_BYTES', () => {
		const {vm, to} = setup();
		vm.output(Buffer.alloc(CONSOLE_TAIL_BYTES, 'a'));
		vm.output(Buffer.from('END'));
		const {tailFrames} = vm.attach(attach(S1, 'q1', false, {tailBytes: CONSOLE_TAIL_BYTES}));
		const data = Buffer.concat(to('q1').map(frame => (frame.type === 'console.output' ? Buffer.from(frame.data, 'base64') : Buffer.alloc(0))));
		expect(data.length).toBe(CONSOLE_TAIL_BYTES);
		expect(data.subarray(-3).toString()).toBe('END');
		expect(tailFrames).toBe(CONSOLE_TAIL_BYTES / MAX_FRAME_BYTES);
	});

	it('gives the writer\'s seat to the last to attach with write; the one before is told and its input refused', () => {
		const {vm, to} = setup();
		expect(vm.attach(attach(S1, 'q1', true)).isWriter).toBe(true);
		expect(vm.attach(attach(S2, 'q2', false)).isWriter).toBe(false);
		expect(vm.writer).toBe(S1);
		expect(vm.attach(attach(S3, 'q3', true)).isWriter).toBe(true);
		expect(vm.writer).toBe(S3);
		expect(to('q1')).toMatchObject([{type: 'console.notice', isWriter: false}]);
		expect(vm.touch(S3, 'alice', 1, {isInput: true})).toEqual({ok: true, isWriter: true});
		expect(vm.touch(S1, 'alice', 2000, {isInput: true})).toEqual({ok: true, isWriter: false});
		expect(to('q1')).toHaveLength(2);
		// Told once a second at most, not for every key.
		vm.touch(S1, 'alice', 2100, {isInput: true});
		expect(to('q1')).toHaveLength(2);
		// A keepalive is not input: nothing to refuse.
		vm.touch(S2, 'alice', 5000, {isInput: false});
		expect(to('q2')).toEqual([]);
	});

	it('leaves the seat empty when the writer goes', () => {
		const {vm} = setup();
		vm.attach(attach(S1, 'q1', true));
		vm.attach(attach(S2, 'q2', false));
		vm.end(S1, 'detached');
		expect(vm.writer).toBeUndefined();
		expect(vm.touch(S2, 'alice', 1, {isInput: true})).toEqual({ok: true, isWriter: false});
	});

	it('refuses input and keepalives for a session of another user, or one that is gone', () => {
		const {vm} = setup();
		vm.attach(attach(S1, 'q1', true, {user: 'alice'}));
		expect(vm.touch(S1, 'bob', 1, {isInput: true}).ok).toBe(false);
		expect(vm.has(S1, 'bob')).toBe(false);
		expect(vm.touch(S9, 'alice', 1, {isInput: true}).ok).toBe(false);
	});

	it('drops output a viewer cannot take without holding up the others, and tells it how much it missed', () => {
		let isCongested = true;
		const {vm, to, textTo} = setup({refuse: output => output === 'slow' && isCongested});
		vm.attach(attach(S1, 'slow', false));
		vm.attach(attach(S2, 'fast', false));
		vm.output(Buffer.from('12345'));
		vm.output(Buffer.from('678'));
		expect(textTo('fast')).toBe('12345678');
		expect(to('slow')).toEqual([]);
		isCongested = false;
		vm.output(Buffer.from('9'));
		expect(to('slow')).toEqual([expect.objectContaining({type: 'console.output', seq: 0, dropped: 8})]);
		vm.output(Buffer.from('0'));
		expect(to('slow')[1]).not.toHaveProperty('dropped');
	});

	it('ends sessions silent for too long, and every session when the VM stops', () => {
		const {vm, to} = setup();
		vm.attach(attach(S1, 'q1', true, {now: 0}));
		vm.attach(attach(S2, 'q2', false, {now: 0}));
		vm.touch(S2, 'alice', 10_000, {isInput: false});
		expect(vm.expire(16_000, 15_000)).toEqual([S1]);
		expect(to('q1').at(-1)).toMatchObject({type: 'console.end', reason: expect.stringMatching(/expired/)});
		vm.endAll('VM vm-abcdefgh stopped');
		expect(to('q2').at(-1)).toMatchObject({type: 'console.end', reason: 'VM vm-abcdefgh stopped'});
		expect(vm.size).toBe(0);
	});
});
