/**
 * Pure reconciliation of what the state dir says (records) with what is running (observed
 * processes): what to adopt, what a crash left half-made, what died on its own.
 */
import type {ObservedVm} from './discover.js';
import type {VmRecord} from './record.js';

export type ReconcileAction =
	/** A running VM with its record: manage it again. */
	| {readonly kind: 'adopt'; readonly id: string; readonly pid: number; readonly startTime?: number}
	/** A record whose process is gone although nobody stopped it: report it crashed. */
	| {readonly kind: 'mark-crashed'; readonly id: string}
	/** Half-made (never confirmed running) or a stop that was cut short: remove what is left. */
	| {readonly kind: 'remove'; readonly id: string; readonly reason: string}
	/** A process of ours whose record is gone or was being stopped: kill it, then remove its files. */
	| {readonly kind: 'kill'; readonly id: string; readonly pid: number; readonly startTime?: number; readonly reason: string};

/** `records` are the parsed `vm.json` files; `unreadable` lists VM dirs whose record is missing or corrupt. */
export function reconcile(records: readonly VmRecord[], unreadable: readonly string[], observed: readonly ObservedVm[]): ReconcileAction[] {
	const actions: ReconcileAction[] = [];
	const pids = new Map(observed.map(vm => [vm.id, vm.pid]));
	// The start time rides along with each pid (when it was read), so the agent signals that process only.
	const startTimes = new Map(observed.flatMap(vm => (vm.startTime === undefined ? [] : [[vm.id, {startTime: vm.startTime}] as const])));
	const recorded = new Set<string>();
	for (const record of records) {
		recorded.add(record.id);
		const pid = pids.get(record.id);
		if (pid === undefined) {
			if (record.phase === 'running' && record.exit === null) {
				actions.push({kind: 'mark-crashed', id: record.id});
			} else if (record.phase === 'creating') {
				actions.push({kind: 'remove', id: record.id, reason: 'start was interrupted before the VM ran'});
			} else if (record.phase === 'stopping') {
				actions.push({kind: 'remove', id: record.id, reason: 'stop was interrupted after the VM ended'});
			}
		} else if (record.phase === 'stopping') {
			actions.push({kind: 'kill', id: record.id, pid, ...startTimes.get(record.id), reason: 'stop was interrupted'});
		} else if (record.phase === 'creating') {
			// Never confirmed running, so never answered: the start, unacked, went back to the queue
			// (or its requester sends it again) and may already be another host's VM. Adopting this
			// one could make two VMs of one start; removing it leaves exactly the retried one.
			actions.push({kind: 'kill', id: record.id, pid, ...startTimes.get(record.id), reason: 'start was interrupted before it was confirmed'});
		} else {
			actions.push({kind: 'adopt', id: record.id, pid, ...startTimes.get(record.id)});
		}
	}

	for (const id of unreadable) {
		const pid = pids.get(id);
		recorded.add(id);
		actions.push(
			pid === undefined
				? {kind: 'remove', id, reason: 'no readable record'}
				: {kind: 'kill', id, pid, ...startTimes.get(id), reason: 'no readable record'},
		);
	}

	for (const vm of observed) {
		if (!recorded.has(vm.id)) {
			actions.push({kind: 'kill', id: vm.id, pid: vm.pid, ...startTimes.get(vm.id), reason: 'its state directory is gone'});
		}
	}

	return actions;
}
