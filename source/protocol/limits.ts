/**
 * Caps on what one message may make a receiver keep or wait for. Events count only when an agent
 * user published them (see `isTrustedEvent`), and even then a bug or a compromised agent cannot
 * make a roster grow without end or keep a silent host "alive" for days.
 */

/** Longest heartbeat period a host may announce: a silent host is forgotten within 2.5 × this. */
export const MAX_HEARTBEAT_MS = 60_000;

/** Most hosts a roster (an agent's, a client's, or the union of a list round's) holds. */
export const MAX_ROSTER_HOSTS = 4096;

/**
 * Whether an event counts: its `userId` (validated by the broker against the publisher's
 * connection) is one of the agent users. The broker does not fill in a missing `userId`, so an
 * event without one is dropped like a forged one.
 */
export function isTrustedEvent(userId: unknown, agentUsers: ReadonlySet<string>): boolean {
	return typeof userId === 'string' && agentUsers.has(userId);
}

/** `U1,U2` → the set of agent users; empty entries are ignored; none given → `fallback`. */
export function parseAgentUsers(list: string | undefined, fallback: string): ReadonlySet<string> {
	const users = (list ?? '').split(',').map(user => user.trim()).filter(user => user !== '');
	return new Set(users.length > 0 ? users : [fallback]);
}
