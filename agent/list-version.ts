/**
 * Conditional list replies: a host names its VM list with a version, and a requester that already
 * holds that version gets `vmsUnchanged` instead of the list. Uptime is left out of the version (it
 * changes every second and the requester ages it itself), and so is load (it changes with every
 * sample: an unchanged reply carries each VM's load instead, a few bytes per VM), so an idle host's
 * list stays unchanged. A migration's progress (`Vm.migration`) is in it: it moves in coarse steps
 * (migration-progress.ts), so a round carries each step once. Pure.
 */
import {createHash} from 'node:crypto';
import type {HostSnapshot, ListBody, Vm} from '../source/protocol/index.js';

/** 128 bits of SHA-256 over the VMs without their uptime, base64url (22 characters). */
export function vmsVersion(vms: readonly Vm[]): string {
	const hash = createHash('sha256');
	for (const vm of vms) {
		hash.update(JSON.stringify({...vm, uptimeSeconds: null, load: undefined})).update('\n');
	}

	return hash.digest('base64url').slice(0, 22);
}

/** The reply to a `vm.list` from host `hostId`: the list with its version, or only the version when the requester has it. */
export function listReply(snapshot: HostSnapshot, hostId: string, body: ListBody): HostSnapshot {
	if (body.vmId !== undefined) {
		// A lookup of one VM: no version, so it never answers "unchanged" or replaces a cached list.
		return {...snapshot, vms: snapshot.vms.filter(vm => vm.id === body.vmId)};
	}

	const version = vmsVersion(snapshot.vms);
	if (body.known?.[hostId] !== version) {
		return {...snapshot, vmsVersion: version};
	}

	const loads = Object.fromEntries(snapshot.vms.flatMap(vm => (vm.load ? [[vm.id, vm.load] as const] : [])));
	return {...snapshot, vms: [], vmsVersion: version, vmsUnchanged: true, ...(Object.keys(loads).length > 0 ? {loads} : {})};
}
