/**
 * Pure reconciliation of what the state dir says (records) with what is running (observed
 * processes), at agent start-up: what to adopt, what to boot again (power loss, host reboot), what
 * a crash left half-made, what a cut-short stop or delete left to finish.
 */
import type {ObservedVm} from './discover.js';
import type {VmRecord} from './record.js';

export type ReconcileAction =
	/** A running VM with its record: manage it again. */
	| {readonly kind: 'adopt'; readonly id: string; readonly pid: number; readonly startTime?: number}
	/** A VM meant to run whose process is gone (the host rebooted, lost power, or QEMU died while the agent was down): boot it again. */
	| {readonly kind: 'recover'; readonly id: string}
	/** A stop cut short whose process is gone: the VM is stopped (disk kept). */
	| {readonly kind: 'mark-stopped'; readonly id: string}
	/** Half-made (never confirmed running), a delete cut short, or no readable record: remove what is left. */
	| {readonly kind: 'remove'; readonly id: string; readonly reason: string}
	/** A process of ours that should not run: kill it, then remove its files (`then: 'remove'`), mark the VM stopped, or keep it as recorded. */
	| {readonly kind: 'kill'; readonly id: string; readonly pid: number; readonly startTime?: number; readonly reason: string; readonly then: 'remove' | 'stopped' | 'keep'};

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
		const process = pid === undefined ? undefined : {id: record.id, pid, ...startTimes.get(record.id)};
		switch (record.phase) {
			case 'creating': {
				// Never confirmed running, so never answered: the start, unacked, went back to the queue
				// (or its requester sends it again) and may already be another host's VM. Adopting this
				// one could make two VMs of one start; removing it leaves exactly the retried one.
				actions.push(
					process
						? {kind: 'kill', ...process, reason: 'start was interrupted before it was confirmed', then: 'remove'}
						: {kind: 'remove', id: record.id, reason: 'start was interrupted before the VM ran'},
				);
				break;
			}

			case 'booting':
			case 'running': {
				if (process) {
					actions.push({kind: 'adopt', ...process});
				} else if (record.desired === 'running') {
					actions.push({kind: 'recover', id: record.id});
				} else {
					actions.push({kind: 'mark-stopped', id: record.id});
				}

				break;
			}

			case 'stopping': {
				actions.push(process ? {kind: 'kill', ...process, reason: 'stop was interrupted', then: 'stopped'} : {kind: 'mark-stopped', id: record.id});
				break;
			}

			case 'deleting': {
				actions.push(
					process
						? {kind: 'kill', ...process, reason: 'delete was interrupted', then: 'remove'}
						: {kind: 'remove', id: record.id, reason: 'delete was interrupted after the VM ended'},
				);
				break;
			}

			case 'stopped':
			case 'crashed': {
				// Stopped and crashed VMs stay as they are; a process with their name is not theirs to keep.
				if (process) {
					actions.push({kind: 'kill', ...process, reason: `the VM is ${record.phase}`, then: 'keep'});
				}

				break;
			}
		}
	}

	for (const id of unreadable) {
		const pid = pids.get(id);
		recorded.add(id);
		actions.push(
			pid === undefined
				? {kind: 'remove', id, reason: 'no readable record'}
				: {kind: 'kill', id, pid, ...startTimes.get(id), reason: 'no readable record', then: 'remove'},
		);
	}

	for (const vm of observed) {
		if (!recorded.has(vm.id)) {
			actions.push({kind: 'kill', id: vm.id, pid: vm.pid, ...startTimes.get(vm.id), reason: 'its state directory is gone', then: 'remove'});
		}
	}

	return actions;
}
