/**
 * Tenancy as pure decisions: who sent a request (and whether they may see and act on every VM),
 * and whether they may act on a given VM. The agent passes in what it knows; nothing here does I/O.
 */

/** Who sent a request: their validated RabbitMQ user, and whether they may see and act on every VM. */
export type Caller = {readonly user: string | null; readonly isAdmin: boolean};

export type TenancyConfig = {
	/** Tenants mode: every request must carry its publisher's user id. */
	readonly tenants: boolean;
	/** The agents' own user (an admin: it runs the fleet). */
	readonly agentUser: string | undefined;
	readonly admins: readonly string[];
};

/** The caller of a request with this user id; undefined when tenants mode needs a user id and there is none. */
export function callerOf(userId: string | undefined, config: TenancyConfig): Caller | undefined {
	const user = userId ?? null;
	if (!config.tenants) {
		return {user, isAdmin: true};
	}

	if (user === null) {
		return undefined;
	}

	return {user, isAdmin: user === config.agentUser || config.admins.includes(user)};
}

/**
 * Whether `caller` may act on a VM owned by `owner` (undefined: a VM this host does not know, which
 * is for the request itself to answer). A VM without an owner (made before tenants mode) is the admins' alone.
 */
export function mayActOn(caller: Caller, owner: string | null | undefined): boolean {
	return caller.isAdmin || owner === undefined || owner === caller.user;
}
