/**
 * An agent's replies to Direct Reply-To addresses, on a broker connection of their own.
 *
 * RabbitMQ 3.10 crashes the publishing channel, and closes its whole connection with 541
 * INTERNAL_ERROR, when a reply goes to an address whose node is not running
 * (`rabbit_channel:deliver_reply`, `{case_clause,error}`): on a cluster, that is the address of
 * every requester that was on a node which has stopped. Starts those requesters sent before the
 * stop are still in the (replicated) start queue and are served after it. On the agent's main
 * connection each such reply dropped its consumers and redelivered its work, and the reply, sent
 * again after the reconnect, dropped it again: a reconnect storm for as long as the node was down.
 *
 * Here a reply that kills the connection costs this connection one reconnect, and tells what is
 * dead: replies go out one at a time, so the one in flight when a 541 closes the connection is
 * the one that caused it. Its address is dead for good (its requester's connection died with the
 * node), and so is every address on that node (the address names it) whose request was sent
 * before then: a request is answered after its node came back only if it was sent after that.
 *
 * A requester writes its own reply address, so a hostile one can forge addresses that crash the
 * channel on purpose (cut short, or naming a node that does not exist), each a different one, and
 * make every reply wait for a reconnect. Nodes a reply went through to are known good; a reply to
 * any other node is a probe, and a sender whose probes crashed the connection `PROBE_CRASHES`
 * times within `PROBE_WINDOW_MS` gets no more probes for that long (its replies on known nodes
 * still go out): a hostile tenant costs the others at most that many reconnects per window.
 */
import {BrokerConnection, type TlsOptions} from './connection.js';

/**
 * Replies waiting to go out for one sender, at most: past it a reply is given up at once. As many
 * as the README's queue-length policy lets a host queue hold, so within it every request is
 * answered; small replies (`busy`, errors) are what piles up (a sender's served requests are
 * bounded by its lane), ≈ 1 KB each.
 */
export const MAX_PENDING_PER_SENDER = 10_000;
/** Addresses remembered as dead (bounded: the oldest are forgotten first). */
const DEAD_MEMORY = 4096;
/** How long to wait, after a reply failed, for the connection's drop that tells why. */
const DROP_WAIT_MS = 1000;
/** A reply that fails for another reason than a dead address is tried this often. */
const ATTEMPTS = 3;
/** AMQP 0-9-1 `internal-error`: what RabbitMQ closes a connection with when one of its channels crashed. */
const INTERNAL_ERROR = 541;
const PREFIX = 'amq.rabbitmq.reply-to.';
/**
 * A sender whose replies to unknown nodes crashed the connection this often … (a legitimate
 * sender causes one crash per node that goes down, with its requests in flight: the addresses
 * of that node in requests sent before are known dead after that; on a 3- or 5-node cluster it
 * stays well below this, even with every node stopped in turn).
 */
const PROBE_CRASHES = 10;
/** … within this long gets no reply to an unknown node for this long. */
const PROBE_WINDOW_MS = 30_000;

/** `refused`: the address is on a node not known good and its sender's probes kept crashing. */
export type ReplyOutcome = 'sent' | 'dead' | 'refused';

export type ReplyPublisherOptions = {
	readonly url: string;
	readonly connectionName: string;
	readonly heartbeatSeconds?: number;
	readonly tls?: TlsOptions;
	/** How long a reply waits for the connection to come back before it is given up. */
	readonly retryMs: number;
};

/** Why a reply could not be sent (its address is not known dead: the broker was unreachable). */
export class ReplyNotSentError extends Error {
	override name = 'ReplyNotSentError';
}

/** A reply given up before it was tried: its sender has `MAX_PENDING_PER_SENDER` waiting already. */
export class ReplyDroppedError extends ReplyNotSentError {
	override name = 'ReplyDroppedError';
}

/**
 * The node part of a Direct Reply-To address: `amq.rabbitmq.reply-to.<base64 of the requester
 * channel's Erlang pid>.<key>`; the pid's external term names its node (3.10: `reply@<hash of the
 * node name>`). Undefined when the address is not one (the whole pid then stands for itself).
 */
export function replyNode(address: string): string | undefined {
	if (!address.startsWith(PREFIX)) {
		return undefined;
	}

	const encoded = address.slice(PREFIX.length).split('.')[0] ?? '';
	const term = Buffer.from(encoded, 'base64');
	// 131 (version), then NEW_PID_EXT (88) or PID_EXT (103), then the node as an atom:
	// ATOM_UTF8_EXT (118) / ATOM_EXT (100) with a 2-byte length, or SMALL_ATOM_UTF8_EXT (119) with 1.
	if (term[0] !== 131 || (term[1] !== 88 && term[1] !== 103)) {
		return undefined;
	}

	// The address is the requester's to write: a term cut short names no node (never a throw).
	const tag = term[2];
	const [start, length] = tag === 118 || tag === 100 ? [5, term.length >= 5 ? term.readUInt16BE(3) : -1] : tag === 119 ? [4, term[3] ?? -1] : [0, -1];
	if (length < 1 || start + length > term.length) {
		return undefined;
	}

	return term.subarray(start, start + length).toString('utf8');
}

/** Keeps `memory` (in insertion order) within DEAD_MEMORY entries, the oldest going first. */
function forgetOldest(memory: Set<string> | Map<string, unknown>): void {
	if (memory.size > DEAD_MEMORY) {
		const oldest = memory.keys().next().value;
		if (oldest !== undefined) {
			memory.delete(oldest);
		}
	}
}

export class ReplyPublisher {
	static async open(options: ReplyPublisherOptions): Promise<ReplyPublisher> {
		const publisher = new ReplyPublisher(options);
		publisher.#connection = await BrokerConnection.open({
			url: options.url,
			connectionName: options.connectionName,
			urlOrder: 'shuffle',
			reconnect: true,
			firstConnect: 'fail-on-setup-error',
			...(options.heartbeatSeconds === undefined ? {} : {heartbeatSeconds: options.heartbeatSeconds}),
			...(options.tls === undefined ? {} : {tls: options.tls}),
			async setup() {},
		});
		publisher.#connection.on('drop', error => publisher.onDrop(error));
		return publisher;
	}

	#connection: BrokerConnection | undefined;
	/**
	 * Replies go out one at a time (see the file's comment), taken in turns from each sender's own
	 * line: a sender's flood of requests delays its own replies, not everyone's.
	 */
	readonly #lines = new Map<string, Array<() => Promise<void>>>();
	#isPumping = false;
	#inFlight: {readonly address: string; readonly sender: string; readonly isProbe: boolean} | undefined;
	/** Nodes (as named in addresses) a reply was confirmed through: the cluster's live nodes. */
	readonly #goodNodes = new Set<string>();
	/** Sender → when its replies to unknown nodes crashed the connection (within the window). */
	readonly #probeCrashes = new Map<string, number[]>();
	#drops = 0;
	readonly #dropWaiters = new Set<() => void>();
	readonly #deadAddresses = new Set<string>();
	/** Node (as named in addresses) → when a reply to it was refused with a 541: it was down then. */
	readonly #nodeDownAt = new Map<string, number>();
	readonly #options: ReplyPublisherOptions;

	private constructor(options: ReplyPublisherOptions) {
		this.#options = options;
	}

	/** How many addresses were found dead so far (each cost this connection one reconnect). */
	get deadAddressCount(): number {
		return this.#deadAddresses.size;
	}

	/**
	 * Whether a reply to `address` can no longer arrive: the address killed a reply before, or its
	 * node was found down after its request was sent (`requestTs`, the request's own clock).
	 */
	isDead(address: string, requestTs?: number): boolean {
		if (this.#deadAddresses.has(address)) {
			return true;
		}

		const node = replyNode(address);
		const downAt = node === undefined ? undefined : this.#nodeDownAt.get(node);
		return downAt !== undefined && requestTs !== undefined && requestTs < downAt;
	}

	/**
	 * Publishes one reply (after those before it), confirmed by the broker. 'dead' when its address
	 * cannot be reached any more (nothing was delivered, and nothing ever will be); throws
	 * ReplyNotSentError when the broker stayed unreachable.
	 */
	async send(address: string, content: Uint8Array, properties: {correlationId?: string; contentType?: string}, requestTs?: number, sender = ''): Promise<ReplyOutcome> {
		const line = this.#lines.get(sender) ?? [];
		if (line.length >= MAX_PENDING_PER_SENDER) {
			throw new ReplyDroppedError(`${MAX_PENDING_PER_SENDER} replies to ${sender === '' ? 'senders without a user id' : sender} are waiting already`);
		}

		const result = new Promise<ReplyOutcome>((resolve, reject) => {
			line.push(async () => this.sendNow(address, content, properties, requestTs, sender).then(resolve, reject));
		});
		this.#lines.set(sender, line);
		void this.pump();
		return result;
	}

	/** Sends the waiting replies one at a time, one sender's after another's (round robin). */
	private async pump(): Promise<void> {
		if (this.#isPumping) {
			return;
		}

		this.#isPumping = true;
		try {
			while (this.#lines.size > 0) {
				// The first sender in the map goes next, then to the back of it if more of its replies wait.
				const [sender, line] = this.#lines.entries().next().value!;
				this.#lines.delete(sender);
				const next = line.shift()!;
				if (line.length > 0) {
					this.#lines.set(sender, line);
				}

				await next();
			}
		} finally {
			this.#isPumping = false;
		}
	}

	async close(): Promise<void> {
		await this.#connection?.close();
	}

	/** When `sender`'s probes crashed the connection, within the window before `now`. */
	private recentProbeCrashes(sender: string, now: number): number[] {
		return (this.#probeCrashes.get(sender) ?? []).filter(at => now - at < PROBE_WINDOW_MS);
	}

	private async sendNow(address: string, content: Uint8Array, properties: {correlationId?: string; contentType?: string}, requestTs: number | undefined, sender: string): Promise<ReplyOutcome> {
		const connection = this.#connection!;
		const node = replyNode(address);
		let lastError: unknown;
		for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
			if (this.isDead(address, requestTs)) {
				return 'dead';
			}

			const isProbe = node === undefined || !this.#goodNodes.has(node);
			if (isProbe && this.recentProbeCrashes(sender, Date.now()).length >= PROBE_CRASHES) {
				return 'refused';
			}

			if (!(await connection.waitUntilConnected(this.#options.retryMs))) {
				throw new ReplyNotSentError(`no broker connection to send the reply on within ${this.#options.retryMs} ms`, {cause: lastError});
			}

			const drops = this.#drops;
			this.#inFlight = {address, sender, isProbe};
			try {
				await connection.publish('', address, content, properties);
				if (node !== undefined) {
					this.#goodNodes.add(node);
				}

				return 'sent';
			} catch (error) {
				lastError = error;
				// The connection's drop says whether this reply was the cause (541): wait for it.
				if (this.#drops === drops) {
					await this.nextDrop(DROP_WAIT_MS);
				}
			} finally {
				this.#inFlight = undefined;
			}
		}

		throw new ReplyNotSentError(`the reply was not confirmed after ${ATTEMPTS} attempts: ${(lastError as Error | undefined)?.message ?? 'unknown error'}`, {cause: lastError});
	}

	private async nextDrop(timeoutMs: number): Promise<void> {
		await new Promise<void>(resolve => {
			const done = () => {
				clearTimeout(timer);
				this.#dropWaiters.delete(done);
				resolve();
			};

			const timer = setTimeout(done, timeoutMs);
			this.#dropWaiters.add(done);
		});
	}

	private onDrop(error: Error): void {
		this.#drops++;
		const inFlight = this.#inFlight;
		if (inFlight !== undefined && (error as {code?: unknown}).code === INTERNAL_ERROR) {
			const {address, sender, isProbe} = inFlight;
			if (isProbe) {
				const now = Date.now();
				this.#probeCrashes.set(sender, [...this.recentProbeCrashes(sender, now), now]);
			}

			this.#deadAddresses.add(address);
			forgetOldest(this.#deadAddresses);
			const node = replyNode(address);
			if (node !== undefined) {
				// Moved to the newest end, so the nodes forgotten first are those down longest ago.
				this.#nodeDownAt.delete(node);
				this.#nodeDownAt.set(node, Date.now());
				forgetOldest(this.#nodeDownAt);
			}
		}

		for (const waiter of [...this.#dropWaiters]) {
			waiter();
		}
	}
}
