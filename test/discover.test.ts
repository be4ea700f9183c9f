import {describe, it, expect} from 'vitest';
import {discoverVms} from '../agent/discover.js';
import {qemuArgs, QEMU_BINARY} from '../agent/qemu-args.js';
import type {ProcessRow} from '../agent/runtime.js';
import {vmPaths} from '../agent/vm-paths.js';

/** A process row as a real QEMU started by `qemuArgs` shows up in the process table. */
const qemuRow = (pid: number, stateRoot: string, id: string): ProcessRow => ({
	pid,
	name: id,
	cmd: [QEMU_BINARY, ...qemuArgs({id, paths: vmPaths(stateRoot, id), memoryMb: 64, cpus: 1, accel: 'tcg'})].join(' '),
});

describe('discoverVms', () => {
	const cases: Array<{name: string; rows: ProcessRow[]; stateRoot: string; expected: Array<{id: string; pid: number}>}> = [
		{
			name: 'finds its own VMs',
			rows: [qemuRow(101, '/k', 'vm-aaaaaaaa'), qemuRow(102, '/k', 'vm-bbbbbbbb')],
			stateRoot: '/k',
			expected: [
				{id: 'vm-aaaaaaaa', pid: 101},
				{id: 'vm-bbbbbbbb', pid: 102},
			],
		},
		{
			name: 'accepts a state root with a trailing slash or a relative spelling',
			rows: [qemuRow(101, '/k', 'vm-aaaaaaaa')],
			stateRoot: '/k/./',
			expected: [{id: 'vm-aaaaaaaa', pid: 101}],
		},
		{
			name: "ignores another agent's VMs in another state dir",
			rows: [qemuRow(101, '/k', 'vm-aaaaaaaa'), qemuRow(201, '/other', 'vm-cccccccc')],
			stateRoot: '/k',
			expected: [{id: 'vm-aaaaaaaa', pid: 101}],
		},
		{
			name: 'ignores a state dir that merely ends with its own (/tmp/k is not /k)',
			rows: [qemuRow(201, '/tmp/k', 'vm-cccccccc')],
			stateRoot: '/k',
			expected: [],
		},
		{
			name: 'ignores a state dir nested inside its own',
			rows: [qemuRow(201, '/k/nested', 'vm-cccccccc')],
			stateRoot: '/k',
			expected: [],
		},
		{
			name: 'ignores processes whose name is not a VM id',
			rows: [
				{pid: 1, name: 'systemd', cmd: '/sbin/init'},
				{pid: 301, name: 'qemu-system-x86', cmd: 'qemu-system-x86_64 -drive file=/k/vm-dddddddd/disk.qcow2'},
				{pid: 302, name: 'bash', cmd: 'bash -c cat /k/vm-dddddddd/console.log'},
			],
			stateRoot: '/k',
			expected: [],
		},
		{
			name: 'ignores a bad id even with a matching path',
			rows: [{pid: 401, name: 'vm-abc', cmd: 'qemu-system-x86_64 -pidfile /k/vm-abc/qemu.pid'}],
			stateRoot: '/k',
			expected: [],
		},
		{
			name: "ignores a VM-named process whose files belong to a different id",
			rows: [{pid: 501, name: 'vm-eeeeeeee', cmd: 'qemu-system-x86_64 -pidfile /k/vm-ffffffff/qemu.pid'}],
			stateRoot: '/k',
			expected: [],
		},
		{
			name: 'ignores a process named like a VM with no files under the root',
			rows: [{pid: 601, name: 'vm-gggggggg', cmd: 'sleep 1000'}],
			stateRoot: '/k',
			expected: [],
		},
		{name: 'returns nothing for an empty process table', rows: [], stateRoot: '/k', expected: []},
	];

	for (const {name, rows, stateRoot, expected} of cases) {
		it(name, () => {
			expect(discoverVms(rows, stateRoot)).toEqual(expected);
		});
	}
});
