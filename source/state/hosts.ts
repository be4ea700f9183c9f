/**
 * The hosts view's model, pure: one row per host with what it holds against its budgets (as the
 * agent reports it, or summed from its VMs for agents that do not), its live use where the list
 * replies carry VM metrics, and where a VM may be migrated to (hosts with room first).
 */
import type {Vm} from '../protocol/index.js';
import {hostHealth, type FleetState, type HostHealth, type HostView} from './fleet.js';
import {filterableBy, type FieldGetters} from './filter.js';
import {groupBy} from './group-by.js';
import type {MigrationChoice} from './view.js';
import {vmUsage} from './vm-usage.js';

export type HostRow = {
	readonly id: string;
	readonly health: HostHealth;
	readonly host: HostView;
	readonly isCordoned: boolean;
	/** VMs it holds (every state) and its `--max-vms`; null when it never answered. */
	readonly vmCount: number;
	readonly maxVms: number | null;
	readonly cpus: {readonly used: number; readonly budget: number | null};
	readonly memoryMb: {readonly used: number; readonly budget: number | null};
	/** Live use summed over its VMs (CPU in % of one core, resident memory): null where the replies carry none. */
	readonly cpuUsePercent: number | null;
	readonly memoryUseMb: number | null;
	readonly accel: string | null;
	readonly images: readonly string[];
	readonly underlay: string | null;
	readonly broker: string | null;
};

/** Whether a VM in this state holds memory and vCPUs (as the agent counts them). */
function isHolding(vm: Vm): boolean {
	return vm.state === 'starting' || vm.state === 'running' || vm.state === 'stopping';
}

/** Every host the TUI knows, by id, with its VMs from `vms`. */
export function hostRows(fleet: Pick<FleetState, 'hosts' | 'vms' | 'now'>): HostRow[] {
	const byHost = groupBy(fleet.vms.values(), vm => vm.host);

	return [...fleet.hosts.values()]
		.sort((a, b) => a.id.localeCompare(b.id))
		.map(host => {
			const vms = byHost.get(host.id) ?? [];
			const status = host.status;
			const holding = vms.filter(vm => isHolding(vm));
			const usages = holding.map(vm => vmUsage(vm));
			const cpuUses = usages.flatMap(usage => (usage.cpuPercent === undefined ? [] : [usage.cpuPercent]));
			const memoryUses = usages.flatMap(usage => (usage.rssMb === undefined ? [] : [usage.rssMb]));
			return {
				id: host.id,
				health: hostHealth(host, fleet.now),
				host,
				isCordoned: status?.cordoned ?? false,
				vmCount: status?.vmCount ?? vms.length,
				maxVms: status?.maxVms ?? null,
				cpus: {used: status?.cpusCommitted ?? holding.reduce((sum, vm) => sum + vm.cpus, 0), budget: status?.cpuBudget ?? null},
				memoryMb: {used: status?.memoryCommittedMb ?? holding.reduce((sum, vm) => sum + vm.memoryMb, 0), budget: status?.memoryBudgetMb ?? null},
				cpuUsePercent: cpuUses.length === 0 ? null : cpuUses.reduce((sum, use) => sum + use, 0),
				memoryUseMb: memoryUses.length === 0 ? null : memoryUses.reduce((sum, use) => sum + use, 0),
				accel: status?.accel ?? null,
				images: status?.images ?? [],
				underlay: status?.underlay ?? null,
				broker: status?.broker ?? null,
			};
		});
}

const HOST_FIELDS: FieldGetters<HostRow> = {
	host: row => row.id,
	state: row => (row.isCordoned ? [row.health, 'cordoned'] : row.health),
	accel: row => row.accel ?? '',
	image: row => row.images,
	cordoned: row => (row.isCordoned ? 'yes' : 'no'),
	broker: row => row.broker ?? '',
};

export const HOST_FILTER_FIELDS = Object.keys(HOST_FIELDS);

export const filterableHost = filterableBy(HOST_FIELDS, row => [row.id, row.health, row.isCordoned ? 'cordoned' : '', row.accel ?? '', ...row.images, row.underlay ?? '', row.broker ?? ''].join('\u0000'));

/** Free guest memory by the host's budget (or, from older agents, its free memory). */
function freeMemoryMb(row: HostRow): number {
	return row.memoryMb.budget === null ? (row.host.status?.freeMemoryMb ?? 0) : row.memoryMb.budget - row.memoryMb.used;
}

function roomText(row: HostRow): string {
	const slots = row.maxVms === null ? '' : `, ${Math.max(0, row.maxVms - row.vmCount)} VM slots`;
	const cpus = row.cpus.budget === null ? '' : `, ${Math.max(0, row.cpus.budget - row.cpus.used)} vCPUs`;
	return `${Math.max(0, freeMemoryMb(row))} MB free${cpus}${slots}`;
}

/** Why `row`'s host cannot take `vm` now, or null when it can. */
function migrationProblem(row: HostRow, vm: Vm): string | null {
	if (row.health !== 'up') {
		return row.health === 'down' ? 'down' : 'not answering';
	}

	if (row.isCordoned) {
		return 'cordoned';
	}

	if (!row.images.includes(vm.image)) {
		return `no image ${vm.image}`;
	}

	if (row.maxVms !== null && row.vmCount >= row.maxVms) {
		return `full (${row.vmCount}/${row.maxVms} VMs)`;
	}

	if (freeMemoryMb(row) < vm.memoryMb) {
		return `${Math.max(0, freeMemoryMb(row))} MB free, needs ${vm.memoryMb}`;
	}

	if (row.cpus.budget !== null && row.cpus.budget - row.cpus.used < vm.cpus) {
		return `${Math.max(0, row.cpus.budget - row.cpus.used)} vCPUs free, needs ${vm.cpus}`;
	}

	return null;
}

/**
 * Where `vm` may go: every other host, those that can take it first (most free memory first, the
 * default), then those that cannot, each saying why (cordoned, down, no image, full).
 */
export function migrationChoices(vm: Vm, rows: readonly HostRow[]): MigrationChoice[] {
	return rows
		.filter(row => row.id !== vm.host)
		.map(row => ({row, problem: migrationProblem(row, vm)}))
		.sort((a, b) => Number(a.problem !== null) - Number(b.problem !== null) || freeMemoryMb(b.row) - freeMemoryMb(a.row) || a.row.id.localeCompare(b.row.id))
		.map(({row, problem}) => ({host: row.id, room: roomText(row), problem}));
}
