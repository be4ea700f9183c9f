/**
 * Which hosts can take a start, by what their list replies say: up (they answered), not cordoned,
 * holding the image, with a VM slot, memory and vCPUs left for it. Most free memory first (as the
 * migrate dialog orders them), then by id. Pure: the client asks these hosts directly when the
 * shared start queue refuses a start.
 */
import type {HostStatus} from './messages.js';

export type StartAsk = {
	readonly image: string;
	/** Omitted: the host's default, unknown here (the host itself still checks). */
	readonly memoryMb?: number;
	readonly cpus?: number;
};

/** Guest memory the host can still hand out: by its budget, or (older agents) its free memory. */
function freeMemoryMb(host: HostStatus): number {
	return host.memoryBudgetMb === undefined ? host.freeMemoryMb : host.memoryBudgetMb - (host.memoryCommittedMb ?? 0);
}

function canTake(host: HostStatus, ask: StartAsk): boolean {
	const freeCpus = host.cpuBudget === undefined ? Number.POSITIVE_INFINITY : host.cpuBudget - (host.cpusCommitted ?? 0);
	return host.cordoned !== true && host.images.includes(ask.image) && host.vmCount < host.maxVms && freeMemoryMb(host) >= (ask.memoryMb ?? 1) && freeCpus >= (ask.cpus ?? 1);
}

/** The ids of the hosts that can take `ask`, most room first. */
export function hostsWithRoomFor(hosts: readonly HostStatus[], ask: StartAsk): string[] {
	return hosts
		.filter(host => canTake(host, ask))
		.sort((a, b) => freeMemoryMb(b) - freeMemoryMb(a) || a.id.localeCompare(b.id))
		.map(host => host.id);
}
