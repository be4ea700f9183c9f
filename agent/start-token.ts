/**
 * The token that makes a start idempotent when its caller gave none. A start without a client
 * token, redelivered (its agent's connection died before the ack), must find the VM its first
 * delivery made, so the token is derived from what a redelivery carries unchanged: the AMQP
 * `messageId` when the publisher set one, else the message itself and its reply address.
 */
import {createHash} from 'node:crypto';

/** Prefix of derived tokens: a caller's own token never starts with it by accident. */
export const DERIVED_TOKEN_PREFIX = 'msg:';

/** What a delivery carries that a redelivery carries unchanged. */
export type MessageIdentity = {
	readonly messageId?: string | undefined;
	readonly correlationId?: string | undefined;
	readonly replyTo?: string | undefined;
	readonly userId?: string | undefined;
	/** The message body (for kloud requests, its parsed JSON serialized again: it carries the request's unique `id`). */
	readonly body: string | Uint8Array;
};

export type StartToken = {
	readonly token: string;
	/**
	 * Whether the token names this message alone. A kloud request carries its own unique `id`, so
	 * its token always does; a tutorial message carries nothing unique unless its publisher set a
	 * `messageId` or `correlationId`: two identical `start-vm` messages get the same token, which
	 * then may only match a start whose delivery was never settled (see tutorial.ts).
	 */
	readonly isUnique: boolean;
};

function digest(parts: ReadonlyArray<string | Uint8Array>): string {
	const hash = createHash('sha256');
	for (const part of parts) {
		const bytes = typeof part === 'string' ? Buffer.from(part) : part;
		// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
		hash.update(`${bytes.byteLength}:`);
		hash.update(bytes);
	}

	return hash.digest('base64url').slice(0, 32);
}

/** The token of a message: its own `messageId` if set, else a digest of its body and reply address. */
export function messageToken(identity: MessageIdentity): string {
	if (identity.messageId !== undefined && identity.messageId !== '') {
		return `${DERIVED_TOKEN_PREFIX}id:${digest([identity.messageId, identity.userId ?? ''])}`;
	}

	return `${DERIVED_TOKEN_PREFIX}${digest([identity.body, identity.correlationId ?? '', identity.replyTo ?? '', identity.userId ?? ''])}`;
}

/** A kloud `vm.start`: the caller's token, else one derived from the message (unique: the body carries the request id). */
export function startToken(clientToken: string | undefined, identity: MessageIdentity): StartToken {
	return {token: clientToken ?? messageToken(identity), isUnique: true};
}

/** A tutorial `start-vm`: unique only when the publisher gave the message an id of its own. */
export function tutorialStartToken(identity: MessageIdentity): StartToken {
	const hasId = Boolean(identity.messageId) || Boolean(identity.correlationId);
	return {token: messageToken(identity), isUnique: hasId};
}
