/** The hosts view's list of what is under way on the selected host: migrations from the VM data and this TUI's own operations, each once. */
import {describe, expect, it} from 'vitest';
import {hostActivity} from '../source/state/host-migrations.js';
import type {Operation} from '../source/state/view.js';
import type {VmMigration} from '../source/protocol/index.js';
import {makeVm, NOW} from './helpers/tui.js';

const toB: VmMigration = {to: 'host-b', phase: 'disk', percent: 10, startedAt: NOW};
const vms = [
	makeVm('vm-aaaaaaaa', 'host-a', {migration: toB}),
	makeVm('vm-cccccccc', 'host-c', {migration: {...toB, to: 'host-a', phase: 'ram', percent: 60}}),
	makeVm('vm-dddddddd', 'host-a'),
	makeVm('vm-eeeeeeee', 'host-c', {migration: {...toB, to: 'host-b'}}),
];
const operation = (id: string, patch: Partial<Operation> = {}): Operation => ({id, text: id, startedAt: NOW, hosts: ['host-a', 'host-b'], result: null, ...patch});
const summary = (hostId: string, operations: Operation[] = []) =>
	hostActivity(hostId, vms, operations).map(entry => (entry.kind === 'operation' ? `op ${entry.operation.id}${entry.migration ? ` ${entry.migration.percent}%` : ''}` : `${entry.direction} ${entry.vm.id}`));

describe('hostActivity', () => {
	it.each([
		['host-a', ['out vm-aaaaaaaa', 'in vm-cccccccc']],
		['host-b', ['in vm-aaaaaaaa', 'in vm-eeeeeeee']],
		['host-c', ['out vm-cccccccc', 'out vm-eeeeeeee']],
		['host-d', []],
	])('lists the migrations out of and into %s, whoever started them', (hostId, expected) => {
		expect(summary(hostId)).toEqual(expected);
	});

	it('shows a migration this TUI started once: as its operation, with the VM\'s progress', () => {
		expect(summary('host-a', [operation('migrate:vm-aaaaaaaa', {vmId: 'vm-aaaaaaaa'})])).toEqual(['op migrate:vm-aaaaaaaa 10%', 'in vm-cccccccc']);
		expect(summary('host-b', [operation('migrate:vm-aaaaaaaa', {vmId: 'vm-aaaaaaaa'})])).toEqual(['op migrate:vm-aaaaaaaa 10%', 'in vm-eeeeeeee']);
	});

	it('keeps a finished operation\'s result beside a new migration of the same VM, and other operations (a drain) beside the migrations they cause', () => {
		const done = operation('migrate:vm-aaaaaaaa', {vmId: 'vm-aaaaaaaa', result: {text: 'failed', isError: true, at: NOW}});
		expect(summary('host-a', [done, operation('drain:host-a', {hosts: ['host-a']})])).toEqual(['op migrate:vm-aaaaaaaa', 'op drain:host-a', 'out vm-aaaaaaaa', 'in vm-cccccccc']);
	});
});
