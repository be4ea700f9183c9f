/**
 * Which hosts are alive, learned from heartbeats: a host is live until it says `host.down` or
 * stays silent for `MISSED_HEARTBEATS` of its own heartbeat intervals (and at least `MIN_SILENCE_MS`).
 * Feed it only events from agent users (`isTrustedEvent`); even so, a heartbeat period counts for
 * at most `MAX_HEARTBEAT_MS` and at most `MAX_ROSTER_HOSTS` hosts are kept.
 */
import {MAX_HEARTBEAT_MS, MAX_ROSTER_HOSTS, type HostStatus, type KloudEvent} from '../protocol/index.js';

export const MISSED_HEARTBEATS = 2.5;

/**
 * Never forget a host sooner than this: an agent busy under a flood handles peers' heartbeats late,
 * and a roster that dropped a live peer would end list rounds before it answered. A host that is
 * really gone costs at most one round's timeout meanwhile.
 */
export const MIN_SILENCE_MS = 10_000;

export type RosterEntry = {readonly status: HostStatus; readonly lastSeen: number};

export class HostRoster {
	readonly #hosts = new Map<string, RosterEntry>();

	/** Folds an event in; returns true when it changed which hosts are known. */
	observe(event: KloudEvent, now: number): boolean {
		switch (event.type) {
			case 'host.heartbeat': {
				const isNew = !this.#hosts.has(event.body.id);
				if (isNew && this.#hosts.size >= MAX_ROSTER_HOSTS) {
					return false;
				}

				this.#hosts.set(event.body.id, {status: event.body, lastSeen: now});
				return isNew;
			}

			case 'host.down': {
				return this.#hosts.delete(event.body.id);
			}

			default: {
				return false;
			}
		}
	}

	/** Ids of hosts heard from recently enough to be waited for. */
	live(now: number): string[] {
		return [...this.#hosts.values()]
			.filter(entry => now - entry.lastSeen <= Math.max(Math.min(entry.status.heartbeatMs, MAX_HEARTBEAT_MS) * MISSED_HEARTBEATS, MIN_SILENCE_MS))
			.map(entry => entry.status.id)
			.sort();
	}

	entries(): RosterEntry[] {
		return [...this.#hosts.values()];
	}
}
