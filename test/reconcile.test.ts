import {describe, expect, it} from 'vitest';
import {reconcile} from '../agent/reconcile.js';
import {vmRecordSchema, type VmRecord} from '../agent/record.js';

const record = (id: string, phase: VmRecord['phase'], options: {exit?: string | null; desired?: VmRecord['desired']} = {}): VmRecord => ({
	id,
	image: 'demo',
	memoryMb: 256,
	cpus: 1,
	createdAt: 1,
	phase,
	startedAt: phase === 'creating' ? null : 2,
	clientToken: null,
	exit: options.exit ?? null,
	network: 'none',
	mac: null,
	owner: null,
	desired: options.desired ?? 'running',
	restart: 'on-failure',
	restarts: 0,
	diskBytes: null,
});

describe('reconcile at agent start-up', () => {
	it.each([
		['adopts a running VM', [record('vm-aaaaaaaa', 'running')], [], [{id: 'vm-aaaaaaaa', pid: 10}], [{kind: 'adopt', id: 'vm-aaaaaaaa', pid: 10}]],
		['adopts a VM booted again whose boot was not yet confirmed', [record('vm-aaaaaaaa', 'booting')], [], [{id: 'vm-aaaaaaaa', pid: 10}], [{kind: 'adopt', id: 'vm-aaaaaaaa', pid: 10}]],
		[
			'kills a VM whose start was cut off after spawning (its start goes back to the queue)',
			[record('vm-aaaaaaaa', 'creating')],
			[],
			[{id: 'vm-aaaaaaaa', pid: 10}],
			[{kind: 'kill', id: 'vm-aaaaaaaa', pid: 10, reason: 'start was interrupted before it was confirmed', then: 'remove'}],
		],
		['boots again a running VM without a process (power loss, host reboot)', [record('vm-aaaaaaaa', 'running')], [], [], [{kind: 'recover', id: 'vm-aaaaaaaa'}]],
		['boots again a VM waiting for its restart when the agent went down', [record('vm-aaaaaaaa', 'booting')], [], [], [{kind: 'recover', id: 'vm-aaaaaaaa'}]],
		['leaves a stopped VM stopped', [record('vm-aaaaaaaa', 'stopped', {desired: 'stopped'})], [], [], []],
		['leaves a crashed VM crashed', [record('vm-aaaaaaaa', 'crashed', {exit: 'exit code 1'})], [], [], []],
		['removes a half-made VM', [record('vm-aaaaaaaa', 'creating')], [], [], [{kind: 'remove', id: 'vm-aaaaaaaa', reason: 'start was interrupted before the VM ran'}]],
		['finishes a stop whose process is gone: stopped, disk kept', [record('vm-aaaaaaaa', 'stopping')], [], [], [{kind: 'mark-stopped', id: 'vm-aaaaaaaa'}]],
		['kills a VM whose stop was cut short, then keeps it stopped', [record('vm-aaaaaaaa', 'stopping')], [], [{id: 'vm-aaaaaaaa', pid: 7}], [{kind: 'kill', id: 'vm-aaaaaaaa', pid: 7, reason: 'stop was interrupted', then: 'stopped'}]],
		['finishes a delete whose process is gone', [record('vm-aaaaaaaa', 'deleting')], [], [], [{kind: 'remove', id: 'vm-aaaaaaaa', reason: 'delete was interrupted after the VM ended'}]],
		['kills a VM whose delete was cut short, then removes it', [record('vm-aaaaaaaa', 'deleting')], [], [{id: 'vm-aaaaaaaa', pid: 7}], [{kind: 'kill', id: 'vm-aaaaaaaa', pid: 7, reason: 'delete was interrupted', then: 'remove'}]],
		['kills a process of a stopped VM and keeps the VM', [record('vm-aaaaaaaa', 'stopped')], [], [{id: 'vm-aaaaaaaa', pid: 7}], [{kind: 'kill', id: 'vm-aaaaaaaa', pid: 7, reason: 'the VM is stopped', then: 'keep'}]],
		['removes a dir with an unreadable record', [], ['vm-bbbbbbbb'], [], [{kind: 'remove', id: 'vm-bbbbbbbb', reason: 'no readable record'}]],
		['kills our process whose state dir is gone', [], [], [{id: 'vm-cccccccc', pid: 9}], [{kind: 'kill', id: 'vm-cccccccc', pid: 9, reason: 'its state directory is gone', then: 'remove'}]],
	] as const)('%s', (_name, records, unreadable, observed, expected) => {
		expect(reconcile(records, unreadable, observed)).toEqual(expected);
	});
});

describe('records from agents older than the lifecycle', () => {
	const old = {id: 'vm-aaaaaaaa', image: 'demo', memoryMb: 256, cpus: 1, createdAt: 1, startedAt: 2, clientToken: null, network: 'none', mac: null, owner: null};
	it('read with defaults: desired running, restart on-failure, no restarts, disk size unknown', () => {
		expect(vmRecordSchema.parse({...old, phase: 'running', exit: null})).toMatchObject({phase: 'running', desired: 'running', restart: 'on-failure', restarts: 0, diskBytes: null});
	});

	it('a running record with an exit was a crashed VM', () => {
		expect(vmRecordSchema.parse({...old, phase: 'running', exit: 'exit code 1'})).toMatchObject({phase: 'crashed', exit: 'exit code 1'});
	});
});

describe('records written by the lifecycle', () => {
	it('a running VM keeps its last exit and stays running when read back', () => {
		const written = {id: 'vm-aaaaaaaa', image: 'demo', memoryMb: 256, cpus: 1, createdAt: 1, startedAt: 2, clientToken: null, network: 'none', mac: null, owner: null, phase: 'running', exit: 'killed by SIGKILL', desired: 'running', restart: 'on-failure', restarts: 1, diskBytes: null};
		expect(vmRecordSchema.parse(written)).toMatchObject({phase: 'running', exit: 'killed by SIGKILL', restarts: 1});
	});
});
