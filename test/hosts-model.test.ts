/** The hosts view's model and the migration picker's choices (source/state/hosts.ts). */
import {describe, expect, it} from 'vitest';
import type {Vm} from '../source/protocol/index.js';
import {fleetReducer, initialFleet, type FleetState} from '../source/state/fleet.js';
import {hostRows, migrationChoices} from '../source/state/hosts.js';
import {makeVm, NOW, snapshot} from './helpers/tui.js';

function fleetOf(...snapshots: Parameters<typeof snapshot>[]): FleetState {
	return fleetReducer(initialFleet(NOW), {type: 'round', at: NOW, snapshots: snapshots.map(args => snapshot(...args)), missing: []});
}

describe('hostRows', () => {
	it('takes committed and budget from the agent, and sums its VMs for agents that do not say', () => {
		const fleet = fleetOf(
			['host-a', [makeVm('vm-aaaaaaaa', 'host-a', {memoryMb: 512, cpus: 2})], ['host-a'], {memoryBudgetMb: 1800, memoryCommittedMb: 640, cpuBudget: 32, cpusCommitted: 3, cordoned: true, underlay: '10.0.0.1', broker: '127.0.0.1:5672'}],
			['host-b', [makeVm('vm-bbbbbbbb', 'host-b', {memoryMb: 256}), makeVm('vm-cccccccc', 'host-b', {state: 'stopped', pid: null, memoryMb: 1024})]],
		);
		const [a, b] = hostRows(fleet);
		expect(a).toMatchObject({id: 'host-a', health: 'up', isCordoned: true, vmCount: 1, maxVms: 16, cpus: {used: 3, budget: 32}, memoryMb: {used: 640, budget: 1800}, underlay: '10.0.0.1', broker: '127.0.0.1:5672'});
		// A stopped VM holds no memory; the budget is unknown.
		expect(b).toMatchObject({id: 'host-b', vmCount: 2, cpus: {used: 1, budget: null}, memoryMb: {used: 256, budget: null}, cpuUsePercent: null, memoryUseMb: null});
	});

	it('sums live use when the VMs carry it', () => {
		// `Vm.load` (agents with load metrics): CPU as a share of the VM's vCPUs; the host sums it in % of one core.
		const load = (cpuPercent: number, rssMb: number) => ({load: {cpuPercent, rssBytes: rssMb * 1024 * 1024, sampledAt: NOW}}) as unknown as Partial<Vm>;
		const fleet = fleetOf(['host-a', [makeVm('vm-aaaaaaaa', 'host-a', {cpus: 2, ...load(50, 200)}), makeVm('vm-bbbbbbbb', 'host-a', load(25.5, 100)), makeVm('vm-cccccccc', 'host-a')]]);
		expect(hostRows(fleet)[0]).toMatchObject({cpuUsePercent: 125.5, memoryUseMb: 300});
	});
});

describe('migrationChoices', () => {
	it('leaves the VM\'s own host out, puts hosts with room first (most free memory first), and says why the others cannot', () => {
		const vm = makeVm('vm-aaaaaaaa', 'host-a', {memoryMb: 512});
		const fleet = fleetOf(
			['host-a', [vm]],
			['host-b', [], ['host-b'], {memoryBudgetMb: 2000, memoryCommittedMb: 1000}],
			['host-c', [], ['host-c'], {memoryBudgetMb: 4000, memoryCommittedMb: 0}],
			['host-d', [], ['host-d'], {cordoned: true, memoryBudgetMb: 8000, memoryCommittedMb: 0}],
			['host-e', [], ['host-e'], {images: ['alpine']}],
			['host-f', [], ['host-f'], {memoryBudgetMb: 2000, memoryCommittedMb: 1800}],
			['host-g', [], ['host-g'], {maxVms: 1, vmCount: 1} as never],
		);
		const choices = migrationChoices(vm, hostRows(fleet));
		expect(choices.map(choice => [choice.host, choice.problem])).toEqual([
			['host-c', null],
			['host-b', null],
			['host-d', 'cordoned'],
			['host-e', 'no image demo'],
			['host-g', 'full (1/1 VMs)'],
			['host-f', '200 MB free, needs 512'],
		]);
		expect(choices[0]!.room).toBe('4000 MB free, 16 VM slots');
	});

	it('does not offer a host that stopped answering', () => {
		const vm = makeVm('vm-aaaaaaaa', 'host-a');
		let fleet = fleetOf(['host-a', [vm]], ['host-b', []]);
		fleet = fleetReducer(fleet, {type: 'round', at: NOW + 2000, snapshots: [snapshot('host-a', [vm])], missing: ['host-b']});
		expect(migrationChoices(vm, hostRows(fleet))).toEqual([{host: 'host-b', room: '1000 MB free, 16 VM slots', problem: 'not answering'}]);
		fleet = fleetReducer(fleet, {type: 'tick', now: NOW + 120_000});
		expect(migrationChoices(vm, hostRows(fleet))[0]!.problem).toBe('down');
	});
});
