/**
 * Live migration decided, without I/O: whether a VM may leave, which host it goes to, and whether a
 * host may take it in. `migration.ts` carries it out (QMP, NBD, the other agent).
 */
import type {ErrorCode, HostStatus} from '../source/protocol/index.js';
import type {Phase} from './lifecycle.js';

export type PlanFailure = {readonly ok: false; readonly code: ErrorCode; readonly reason: string};

/** The VM's side: what it needs of a host. */
export type MigratingVm = {readonly id: string; readonly image: string; readonly memoryMb: number; readonly phase: Phase; readonly network?: string};

/** Why this VM cannot leave now (undefined: it can). Only a running VM migrates live. */
export function departureProblem(vm: MigratingVm, hostId: string): PlanFailure | undefined {
	if (vm.phase !== 'running') {
		return {
			ok: false,
			code: 'invalid_state',
			reason: `cannot migrate VM ${vm.id} on host ${hostId}: it is ${vm.phase}, and only a running VM migrates live (boot it first, or delete it and start it elsewhere)`,
		};
	}

	// A user-mode VM's QEMU runs in an empty network namespace of its own (qemu-netns.ts): it has no
	// route to another host's QEMU.
	if (vm.network === 'user') {
		return {ok: false, code: 'bad_request', reason: `cannot migrate VM ${vm.id}: it is on user-mode networking, whose QEMU has no route to another host (only private, public and none VMs migrate)`};
	}

	return undefined;
}

/**
 * The destination: the host asked for (checked against what its heartbeat says), else the live,
 * uncordoned host with the image and the most free memory. `peers` are the live hosts but this one.
 */
export function pickDestination(vm: MigratingVm, hostId: string, peers: readonly HostStatus[], to: string | undefined): {readonly ok: true; readonly host: string} | PlanFailure {
	if (to === hostId) {
		return {ok: false, code: 'bad_request', reason: `VM ${vm.id} is on host ${hostId} already: name another host to migrate it to`};
	}

	if (to !== undefined) {
		const peer = peers.find(status => status.id === to);
		if (!peer) {
			const known = peers.map(status => status.id).sort();
			return {ok: false, code: 'bad_request', reason: `no live host ${to} to migrate VM ${vm.id} to (live: ${known.length > 0 ? known.join(', ') : 'none but ' + hostId})`};
		}

		return {ok: true, host: peer.id};
	}

	const fitting = peers.filter(status => !status.cordoned && status.images.includes(vm.image) && status.freeMemoryMb >= vm.memoryMb && status.vmCount < status.maxVms);
	const best = [...fitting].sort((a, b) => b.freeMemoryMb - a.freeMemoryMb || a.id.localeCompare(b.id))[0];
	if (!best) {
		return {
			ok: false,
			code: 'no_capacity',
			reason: `no other host can take VM ${vm.id} (image "${vm.image}", ${vm.memoryMb} MiB): ${peers.length === 0 ? 'no other live host' : `none of ${peers.map(status => status.id).sort().join(', ')} is uncordoned with the image and room`}`,
		};
	}

	return {ok: true, host: best.id};
}

/** The destination's own checks, in the order a user would fix them. */
export function arrivalProblem(options: {
	readonly hostId: string;
	readonly vmId: string;
	readonly image: string;
	readonly isCordoned: boolean;
	readonly migrationAddress: string | undefined;
	readonly hasVm: boolean;
	readonly hasImage: boolean;
	readonly imageNames: readonly string[];
	readonly capacityProblem: string | undefined;
}): PlanFailure | undefined {
	const {hostId, vmId} = options;
	if (options.isCordoned) {
		return {ok: false, code: 'no_capacity', reason: `host ${hostId} is cordoned: it takes no VMs in (uncordon it first)`};
	}

	if (options.migrationAddress === undefined) {
		return {ok: false, code: 'bad_request', reason: `host ${hostId} has no migration address: start its agent with --migration-address (or --underlay)`};
	}

	if (options.hasVm) {
		return {ok: false, code: 'invalid_state', reason: `VM ${vmId} is on host ${hostId} already (or a migration of it is under way)`};
	}

	if (!options.hasImage) {
		return {
			ok: false,
			code: 'unknown_image',
			reason: `host ${hostId} has no image "${options.image}" for VM ${vmId} (it has: ${options.imageNames.length > 0 ? options.imageNames.join(', ') : 'none'})`,
		};
	}

	if (options.capacityProblem !== undefined) {
		return {ok: false, code: 'no_capacity', reason: `host ${hostId} cannot take VM ${vmId}: ${options.capacityProblem}`};
	}

	return undefined;
}

/** A TCP port for one incoming stream (NBD or RAM): random in the dynamic range, retried on a clash. */
export function randomPort(random: () => number = Math.random): number {
	return 49_152 + Math.floor(random() * (61_000 - 49_152));
}
