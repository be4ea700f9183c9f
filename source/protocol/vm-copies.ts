/**
 * One row per VM when several hosts' lists are merged. A VM migrating live is listed by its source
 * host, marked `migration`, and for a few ms around the handover by its destination too (which took
 * it in before the source dropped its paused copy): the copy without the mark is the one that runs
 * on. Pure, and types only from the protocol, so the TUI may use it without loading zod.
 */
import type {Vm} from './messages.js';

/** Which of two sightings of one VM id to keep: `held` only when `later` is marked migrating and `held` is not; else `later` (the newer word). */
export function preferredCopy(held: Vm, later: Vm): Vm {
	return later.migration !== undefined && held.migration === undefined ? held : later;
}

/** `vms` with one entry per id, where its first sighting was, by `preferredCopy`. */
export function oneCopyPerVm(vms: Iterable<Vm>): Vm[] {
	const byId = new Map<string, Vm>();
	for (const vm of vms) {
		const held = byId.get(vm.id);
		byId.set(vm.id, held === undefined ? vm : preferredCopy(held, vm));
	}

	return [...byId.values()];
}
