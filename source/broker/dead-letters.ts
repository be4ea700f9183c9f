/**
 * What to tell the requester of a start that died in the start queue. Pure: reads the `x-death`
 * header RabbitMQ adds when it dead-letters a message, and the message itself.
 */
import {parseRequest, START_DELIVERY_LIMIT} from '../protocol/index.js';

/** Why RabbitMQ dead-lettered a message (the `reason` of its `x-death` entry). */
export type DeathReason = 'expired' | 'delivery_limit' | 'rejected' | 'maxlen' | 'unknown';

/** The answer a dead-lettered request gets, or none (it was answered before it died). */
export type DeadLetterAnswer = {readonly code: 'no_capacity'; readonly reason: string} | undefined;

type XDeath = {readonly reason?: unknown; readonly queue?: unknown; readonly 'original-expiration'?: unknown; readonly count?: unknown};

/** The reason `queue` dead-lettered this message, from its `x-death` header. */
export function deathReason(headers: Record<string, unknown> | undefined, queue: string): {readonly reason: DeathReason; readonly originalExpirationMs?: number} {
	const deaths = headers?.['x-death'];
	if (!Array.isArray(deaths)) {
		return {reason: 'unknown'};
	}

	const death = (deaths as XDeath[]).find(entry => entry?.queue === queue);
	if (!death) {
		return {reason: 'unknown'};
	}

	const reason = typeof death.reason === 'string' && ['expired', 'delivery_limit', 'rejected', 'maxlen'].includes(death.reason) ? (death.reason as DeathReason) : 'unknown';
	const expiration = Number(death['original-expiration']);
	return Number.isFinite(expiration) && expiration > 0 ? {reason, originalExpirationMs: expiration} : {reason};
}

/**
 * A start that expired unclaimed, or that went round the hosts until the delivery limit, gets
 * `no_capacity` with a reason that says which. A rejected message was malformed and has had its
 * error reply already (exactly one reply per request), and one without a death in the start queue
 * was never a start: neither gets an answer here.
 */
export function deadLetterAnswer(options: {readonly headers: Record<string, unknown> | undefined; readonly content: Uint8Array; readonly startQueue: string}): DeadLetterAnswer {
	const {reason, originalExpirationMs} = deathReason(options.headers, options.startQueue);
	const parsed = parseRequest(options.content);
	if (!parsed.ok || parsed.value.type !== 'vm.start') {
		return undefined;
	}

	const what = `a VM from image "${parsed.value.body.image}"${parsed.value.body.memoryMb === undefined ? '' : ` with ${parsed.value.body.memoryMb} MB`}`;
	switch (reason) {
		case 'expired': {
			const within = originalExpirationMs === undefined ? '' : ` within ${(originalExpirationMs / 1000).toFixed(1)} s`;
			return {code: 'no_capacity', reason: `no host had capacity to take the start of ${what}${within}`};
		}

		case 'delivery_limit': {
			return {code: 'no_capacity', reason: `no host had capacity for ${what}: it was offered ${START_DELIVERY_LIMIT + 1} times and refused`};
		}

		case 'maxlen': {
			return {code: 'no_capacity', reason: `the start of ${what} was dropped before any host took it (the start queue is full)`};
		}

		// Not from the start queue (no x-death of its own): nothing kloud sent, so nobody to answer.
		case 'unknown':
		case 'rejected': {
			return undefined;
		}
	}
}
