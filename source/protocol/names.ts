/**
 * Every exchange, queue and routing key kloud uses, derived from one namespace so that several
 * clouds (and parallel test runs) share a broker without seeing each other.
 */

export const DEFAULT_NAMESPACE = 'kloud';

/** The routing key a request for every host is published with on the command exchange. */
export const ALL_HOSTS_KEY = 'all';

/**
 * The routing key of a start for any host on the command exchange: the start queue is bound to it.
 * Starts go through the command exchange, not the default one, so a tenant needs no write
 * permission on the default exchange (which reaches every queue by name: the dead letters, the
 * controller's election queue, the groups stream).
 */
export const START_KEY = 'start';

export type Topology = {
	readonly namespace: string;
	/** Topic exchange for requests: `all` reaches every agent, `host.<id>` exactly one. */
	readonly commandExchange: string;
	/** Topic exchange for heartbeats and VM state events (`host.heartbeat.<id>`, `vm.<event>.<host>`). */
	readonly eventExchange: string;
	/** Durable quorum work queue of starts that any agent with capacity may take. */
	readonly startQueue: string;
	/**
	 * Fanout exchange the start queue dead-letters to (a start that expired unclaimed, or went round
	 * the hosts `START_DELIVERY_LIMIT` times), and the durable queue bound to it that agents consume
	 * to tell each such requester "no host had capacity". Both are named `<ns>.dead`.
	 */
	readonly deadLetters: string;
	/** Stream of group specs (`group.put`, `group.delete` tombstones): the groups' only durable store. */
	readonly groupsStream: string;
	/** Quorum queue with a single active consumer: the group controller the broker elected. */
	readonly controllerQueue: string;
	/** The exclusive queue one agent consumes its own requests from. */
	hostQueue(hostId: string): string;
	/** Routing key that reaches exactly one host on the command exchange. */
	hostKey(hostId: string): string;
	/**
	 * Routing key of an event on the event exchange: `<type>.<host>` for host events; VM events add
	 * their owner first, `vm.<verb>.<owner>.<host>` (`-` when the VM has none), so a tenant's topic
	 * permissions can let it bind only its own VMs' events (`vm.*.{username}.#`).
	 */
	eventKey(type: string, hostId: string, owner?: string | null): string;
};

/**
 * How often a start may be handed to an agent and put back (no capacity there, or the agent's
 * connection died holding it) before it is dead-lettered. A quorum queue's arguments can never
 * change once declared: a `<ns>.start` declared with other arguments must be deleted first.
 */
export const START_DELIVERY_LIMIT = 10;

/**
 * AMQP header (boolean true) on a request that may have been sent before: resent after a lost
 * connection, or a start whose client token the caller supplied. An agent that does not know such
 * a start's token asks the other hosts before making a VM for it.
 */
export const REPEAT_HEADER = 'x-kloud-repeat';

/** Owner segment of a VM event's routing key when the VM has no owner. */
export const NO_OWNER_KEY = '-';

const NAMESPACE_PATTERN = /^[a-zA-Z\d][\w.-]{0,63}$/;

/** Returns an error message when the namespace is not usable as a name prefix. */
export function checkNamespace(namespace: string): string | undefined {
	return NAMESPACE_PATTERN.test(namespace)
		? undefined
		: `invalid namespace "${namespace}": use 1-64 letters, digits, '.', '_' or '-'`;
}

export function topology(namespace: string = DEFAULT_NAMESPACE): Topology {
	return {
		namespace,
		commandExchange: `${namespace}.commands`,
		eventExchange: `${namespace}.events`,
		startQueue: `${namespace}.start`,
		deadLetters: `${namespace}.dead`,
		groupsStream: `${namespace}.groups`,
		controllerQueue: `${namespace}.controller`,
		hostQueue: hostId => `${namespace}.host.${hostId}`,
		hostKey: hostId => `host.${hostId}`,
		eventKey: (type, hostId, owner) => (type.startsWith('vm.') ? `${type}.${owner ?? NO_OWNER_KEY}.${hostId}` : `${type}.${hostId}`),
	};
}
