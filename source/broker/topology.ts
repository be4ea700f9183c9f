/** Declares the shared exchanges and the start work queue of a namespace; safe to repeat. */
import type {Channel} from 'amqplib';
import {START_DELIVERY_LIMIT, START_KEY, type Topology} from '../protocol/index.js';

/** How long an unanswered dead-lettered start is kept for an agent to answer it: its requester is long gone after that. */
const DEAD_LETTER_TTL_MS = 10 * 60 * 1000;

/**
 * The start queue's arguments. A quorum queue refuses a re-declaration with other arguments (406),
 * so these are fixed: a `<ns>.start` declared by an older kloud must be deleted before upgrading.
 */
export function startQueueArguments(topo: Topology): Record<string, unknown> {
	return {
		'x-queue-type': 'quorum',
		// A start that expires unclaimed, or that went round the hosts too often, is dead-lettered
		// and answered from there with "no host had capacity", instead of vanishing.
		'x-dead-letter-exchange': topo.deadLetters,
		'x-delivery-limit': START_DELIVERY_LIMIT,
	};
}

/**
 * The dead-letter queue's arguments: a quorum queue too (replicated over a cluster's nodes, so a
 * dead start is still answered when one node is down; message TTL on quorum queues needs
 * RabbitMQ ≥ 3.10), and as fixed as the start queue's.
 */
export function deadQueueArguments(): Record<string, unknown> {
	return {'x-queue-type': 'quorum', 'x-message-ttl': DEAD_LETTER_TTL_MS};
}

/** A 406 on re-declaring a queue whose arguments changed: say how to get past it once. */
function olderQueue(queue: string): (error: unknown) => never {
	return (error: unknown) => {
		throw /PRECONDITION[-_]FAILED/.test((error as Error).message)
			? new TopologyError(`queue ${queue} was declared by an older kloud with other arguments: delete it once (rabbitmqctl delete_queue ${queue}) and start again`, {cause: error})
			: error;
	};
}

/** The namespace's exchanges and queues cannot be declared or found as they should be. */
export class TopologyError extends Error {
	override name = 'TopologyError';
}

/** Declares the namespace's exchanges, the start queue and its dead letters; safe to repeat (needs configure permission). */
export async function declareShared(channel: Channel, topo: Topology): Promise<void> {
	await channel.assertExchange(topo.commandExchange, 'topic', {durable: true});
	await channel.assertExchange(topo.eventExchange, 'topic', {durable: true});
	await channel.assertExchange(topo.deadLetters, 'fanout', {durable: true});
	await channel.assertQueue(topo.deadLetters, {durable: true, arguments: deadQueueArguments()}).catch(olderQueue(topo.deadLetters));
	await channel.bindQueue(topo.deadLetters, topo.deadLetters, '');
	await declareStartQueue(channel, topo);
	// Where clients publish starts (the command exchange: see START_KEY). Every agent declares this
	// when it connects, so a start is routed once one agent of this version has run.
	await channel.bindQueue(topo.startQueue, topo.commandExchange, START_KEY);
}

/**
 * Declares the start queue (a quorum queue: starts survive a broker restart (and, on a cluster, the
 * loss of a node) and are redelivered if an agent dies mid-way); one an older kloud declared with
 * other arguments is a clear TopologyError.
 */
export async function declareStartQueue(channel: Channel, topo: Topology): Promise<void> {
	await channel.assertQueue(topo.startQueue, {durable: true, arguments: startQueueArguments(topo)}).catch(olderQueue(topo.startQueue));
}

/**
 * For a user allowed to use but not to declare the shared names (a tenant, see the README's
 * permission recipe): checks they exist, which needs no configure permission.
 */
export async function checkShared(channel: Channel, topo: Topology): Promise<void> {
	await channel.checkExchange(topo.commandExchange);
	await channel.checkExchange(topo.eventExchange);
	await channel.checkQueue(topo.startQueue);
}
