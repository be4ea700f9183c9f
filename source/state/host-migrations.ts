/**
 * What the hosts view lists under the selected host: the live migrations out of it and into it,
 * read from the VMs' `migration` (its source host reports it in its list, so every TUI sees a
 * migration whoever set it going: another TUI, `kloud-tui migrate`, `drain`), and the operations
 * this TUI set going itself. A migration this TUI started shows once: as its operation, with the
 * VM's progress on it. Pure.
 */
import type {Vm, VmMigration} from '../protocol/index.js';
import type {Operation} from './view.js';

export type HostActivity =
	/** An operation of this TUI's on the host, with its VM's progress while it migrates. */
	| {readonly kind: 'operation'; readonly operation: Operation; readonly migration: VmMigration | undefined}
	/** A migration out of (`out`) or into (`in`) the host that this TUI did not set going (or that outlived it). */
	| {readonly kind: 'migration'; readonly direction: 'out' | 'in'; readonly vm: Vm; readonly migration: VmMigration};

/** The selected host's activity: its operations first (started in that order), then the other migrations out and in, by VM id. */
export function hostActivity(hostId: string, vms: Iterable<Vm>, operations: readonly Operation[]): HostActivity[] {
	const migrating = new Map<string, {readonly vm: Vm; readonly migration: VmMigration}>();
	for (const vm of vms) {
		if (vm.migration && (vm.host === hostId || vm.migration.to === hostId)) {
			migrating.set(vm.id, {vm, migration: vm.migration});
		}
	}

	const activity: HostActivity[] = [];
	const told = new Set<string>();
	for (const operation of operations) {
		if (!operation.hosts.includes(hostId)) {
			continue;
		}

		const own = operation.result === null && operation.vmId !== undefined ? migrating.get(operation.vmId) : undefined;
		if (own) {
			told.add(own.vm.id);
		}

		activity.push({kind: 'operation', operation, migration: own?.migration});
	}

	const others = [...migrating.values()].filter(({vm}) => !told.has(vm.id)).sort((a, b) => a.vm.id.localeCompare(b.vm.id));
	for (const {vm, migration} of others) {
		activity.push({kind: 'migration', direction: vm.host === hostId ? 'out' : 'in', vm, migration});
	}

	return activity;
}
