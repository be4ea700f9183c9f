import {describe, expect, it} from 'vitest';
import {reconcile} from '../agent/reconcile.js';
import type {VmRecord} from '../agent/record.js';

const record = (id: string, phase: VmRecord['phase'], exit: string | null = null): VmRecord => ({
	id,
	image: 'demo',
	memoryMb: 256,
	cpus: 1,
	createdAt: 1,
	phase,
	startedAt: phase === 'creating' ? null : 2,
	clientToken: null,
	exit,
	network: 'none',
	mac: null,
	owner: null,
});

describe('reconcile', () => {
	it.each([
		['adopts a running VM', [record('vm-aaaaaaaa', 'running')], [], [{id: 'vm-aaaaaaaa', pid: 10}], [{kind: 'adopt', id: 'vm-aaaaaaaa', pid: 10}]],
		[
			'kills a VM whose start was cut off after spawning (its start goes back to the queue)',
			[record('vm-aaaaaaaa', 'creating')],
			[],
			[{id: 'vm-aaaaaaaa', pid: 10}],
			[{kind: 'kill', id: 'vm-aaaaaaaa', pid: 10, reason: 'start was interrupted before it was confirmed'}],
		],
		['marks a running VM without a process crashed', [record('vm-aaaaaaaa', 'running')], [], [], [{kind: 'mark-crashed', id: 'vm-aaaaaaaa'}]],
		['leaves an already crashed VM alone', [record('vm-aaaaaaaa', 'running', 'exit code 1')], [], [], []],
		['removes a half-made VM', [record('vm-aaaaaaaa', 'creating')], [], [], [{kind: 'remove', id: 'vm-aaaaaaaa', reason: 'start was interrupted before the VM ran'}]],
		['finishes a stop whose process is gone', [record('vm-aaaaaaaa', 'stopping')], [], [], [{kind: 'remove', id: 'vm-aaaaaaaa', reason: 'stop was interrupted after the VM ended'}]],
		['kills a VM whose stop was cut short', [record('vm-aaaaaaaa', 'stopping')], [], [{id: 'vm-aaaaaaaa', pid: 7}], [{kind: 'kill', id: 'vm-aaaaaaaa', pid: 7, reason: 'stop was interrupted'}]],
		['removes a dir with an unreadable record', [], ['vm-bbbbbbbb'], [], [{kind: 'remove', id: 'vm-bbbbbbbb', reason: 'no readable record'}]],
		['kills our process whose state dir is gone', [], [], [{id: 'vm-cccccccc', pid: 9}], [{kind: 'kill', id: 'vm-cccccccc', pid: 9, reason: 'its state directory is gone'}]],
	] as const)('%s', (_name, records, unreadable, observed, expected) => {
		expect(reconcile(records, unreadable, observed)).toEqual(expected);
	});
});
