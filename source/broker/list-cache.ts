/**
 * What a requester keeps of each host's last full VM list: sent as `known` with the next `vm.list`,
 * so a host whose list did not change answers `vmsUnchanged` with no VMs, and filled back in here
 * with each VM's uptime aged by the time since. A TUI's idle rounds then carry, parse and check
 * each host's status and roster instead of every VM. Pure: the caller gives the clock.
 */
import type {HostSnapshot, Vm} from '../protocol/index.js';

type Entry = {readonly version: string; readonly vms: readonly Vm[]; readonly at: number};

export class VmListCache {
	readonly #entries = new Map<string, Entry>();

	/** Host id → the version of its list held here: the request's `known`. */
	known(): Record<string, string> {
		return Object.fromEntries([...this.#entries].map(([host, entry]) => [host, entry.version]));
	}

	/**
	 * The snapshot with its VMs: a full one as it came (and kept, when versioned); an unchanged one
	 * filled in from the copy held here. Undefined when it names a list no longer held (the host
	 * then counts as silent this round, and the next round asks it for everything).
	 */
	resolve(snapshot: HostSnapshot, now: number): HostSnapshot | undefined {
		const host = snapshot.host.id;
		if (!snapshot.vmsUnchanged) {
			if (snapshot.vmsVersion === undefined) {
				this.#entries.delete(host);
			} else {
				this.#entries.set(host, {version: snapshot.vmsVersion, vms: snapshot.vms, at: now});
			}

			return snapshot;
		}

		const entry = this.#entries.get(host);
		if (!entry || entry.version !== snapshot.vmsVersion) {
			this.#entries.delete(host);
			return undefined;
		}

		const elapsed = Math.max(0, Math.round((now - entry.at) / 1000));
		const {vmsUnchanged: _, loads, ...rest} = snapshot;
		return {
			...rest,
			vms: entry.vms.map(vm => {
				// Load is not part of the version: it comes fresh with every reply (none: not measured now).
				const load = loads?.[vm.id];
				const {load: _old, ...base} = vm;
				const aged = vm.uptimeSeconds === null || elapsed === 0 ? base : {...base, uptimeSeconds: vm.uptimeSeconds + elapsed};
				return load ? {...aged, load} : aged;
			}),
		};
	}

	/** Forgets every host not in `hosts` (gone from the rosters), so `known` does not grow with the past. */
	retain(hosts: ReadonlySet<string>): void {
		for (const host of this.#entries.keys()) {
			if (!hosts.has(host)) {
				this.#entries.delete(host);
			}
		}
	}
}
