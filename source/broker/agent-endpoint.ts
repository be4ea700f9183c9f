/**
 * The agent's side of the broker: its own exclusive host queue (requests for `all` hosts and for
 * `host.<id>`), the shared start work queue (taken only while it has capacity), peers' heartbeats,
 * and optionally the tutorial's `vm-queue`. Every request with a reply address gets exactly one
 * reply; a message is acked only after its reply is confirmed by the broker.
 */
import {createHash, randomUUID} from 'node:crypto';
import type {Channel, ConsumeMessage} from 'amqplib';
import {
	ALL_HOSTS_KEY,
	DEFAULT_CONSOLE_BYTES,
	MAX_ROSTER_HOSTS,
	REPEAT_HEADER,
	encode,
	errorReply,
	isTrustedEvent,
	makeEvent,
	makeRequest,
	okReply,
	parseEvent,
	parseReplyValue,
	parseRequest,
	topology,
	type ErrorCode,
	type EventDraft,
	type HostSnapshot,
	type KloudEvent,
	type Reply,
	type Request,
	type RequestDraft,
	type Topology,
} from '../protocol/index.js';
import {ByteBudget} from './byte-budget.js';
import {BrokerConnection, type ConnectionState, type TlsOptions} from './connection.js';
import {deadLetterAnswer, type DeadLetterAnswer} from './dead-letters.js';
import {FairLanes} from './fair-lanes.js';
import {ReplyDroppedError, ReplyNotSentError, ReplyPublisher} from './reply-publisher.js';
import {Rpc} from './rpc.js';
import {declareShared} from './topology.js';

export type HandlerResult =
	| {readonly ok: true; readonly value: unknown}
	| {readonly ok: false; readonly code: ErrorCode; readonly reason: string}
	/** Not now (e.g. no capacity left): put the start back for another host. */
	| {readonly ok: 'requeue'};

export type Logger = {
	debug(object: object, message?: string): void;
	info(object: object, message?: string): void;
	warn(object: object, message?: string): void;
	error(object: object, message?: string): void;
};

/** What the broker says about a request besides its body. */
export type RequestContext = {
	/** A start taken from the shared work queue (may be requeued) or one sent to this host. */
	readonly via: 'host' | 'work';
	/** The publisher's RabbitMQ user, validated by the broker (absent when the publisher set none). */
	readonly userId?: string;
	/** Seen before: redelivered by the broker, or sent again by its requester after a lost connection. */
	readonly isRepeat: boolean;
	/** What a redelivery carries unchanged: a start without a client token is made idempotent with these. */
	readonly messageId?: string;
	readonly correlationId?: string;
	readonly replyTo?: string;
};

/** One delivery from the tutorial's queue. */
export type TutorialDelivery = {
	/** Redelivered by the broker: an earlier delivery of it may have been served (its ack was lost). */
	readonly isRepeat: boolean;
	readonly messageId?: string;
	readonly correlationId?: string;
	readonly replyTo?: string;
	readonly userId?: string;
	/**
	 * Resolves true once the broker has this delivery's ack (proved by a later round trip on the
	 * same channel), false when its channel died first: then the broker delivers it again.
	 */
	readonly settled: Promise<boolean>;
};

export type AgentHandlers = {
	handleRequest(request: Request, context: RequestContext): Promise<HandlerResult>;
	handleEvent(event: KloudEvent): void;
	/**
	 * A start that died in the start queue (expired unclaimed, or refused by every host until the
	 * delivery limit), with the `no_capacity` answer it would get: the agent may know better (the
	 * VM for its token exists after all) and answer with that instead.
	 */
	handleDeadStart?(request: Request & {readonly type: 'vm.start'}, answer: NonNullable<DeadLetterAnswer>, context: {readonly userId?: string}): Promise<HandlerResult>;
	/** Serves one unversioned tutorial message; returns the JSON to reply with, or undefined for none. */
	handleTutorial?(content: Buffer, delivery: TutorialDelivery): Promise<unknown>;
	onConnectionState?(state: ConnectionState): void;
};

export type AgentEndpointOptions = {
	readonly url: string;
	readonly namespace: string;
	readonly hostId: string;
	/** AMQP heartbeat (seconds): how soon the broker drops a hung agent. Not kloud's heartbeat. */
	readonly amqpHeartbeatSeconds?: number;
	/**
	 * RabbitMQ users whose events count (heartbeats, host.down, VM events): others' are dropped and
	 * counted. Default: this endpoint's own user.
	 */
	readonly agentUsers?: ReadonlySet<string>;
	/** Also serve the tutorial's queue (its name, usually `vm-queue`). */
	readonly tutorialQueue?: string;
	/** CA and client certificate for `amqps://` URLs. */
	readonly tls?: TlsOptions;
	readonly log: Logger;
};

type ParsedRequest = ReturnType<typeof parseRequest>;

/** Replies go only to Direct Reply-To addresses: a request cannot make an agent publish into a queue of its choosing. */
const REPLY_ADDRESS_PREFIX = 'amq.rabbitmq.reply-to.';

/** How long a reply that could not be sent (the connection dropped) waits for the connection to come back. */
const REPLY_RETRY_MS = 10_000;

/**
 * Host-queue messages held unacked (the broker delivers no more until some are answered): with
 * requests ≤ 256 KiB, at most 32 MiB of request bodies. Each sender's share is capped lower
 * (`FairLanes`), so one sender never fills the window.
 */
export const HOST_PREFETCH = 128;

/** Console bytes read and not yet sent, over all requests: a flood of console reads waits here. */
export const CONSOLE_BYTES_IN_FLIGHT = 4 * 1024 * 1024;

/** Dropped events are logged at most this often (with the count since the last line). */
const DROPPED_LOG_MS = 10_000;
/** How many confirmed replies to redeliverable messages are remembered, so a redelivery is not answered twice. */
const REPLIED_MEMORY = 4096;

type ReplyOptions = {
	/** For a redeliverable message: whether the channel it came on is still the current one. */
	readonly isOurs?: () => boolean;
	/** The request's `ts`: a reply to a broker node found down after it was sent cannot arrive. */
	readonly requestTs?: number;
	/** The broker-validated user who asked ('' for none): what a forged reply address is charged to. */
	readonly sender?: string;
};

/** Whom a request is charged to (its lane, its reply line): its broker-validated user id, '' for none. */
function senderOf(userId: unknown): string {
	return typeof userId === 'string' ? userId : '';
}

export class DuplicateHostError extends Error {
	override name = 'DuplicateHostError';
}

export class AgentEndpoint {
	static async open(options: AgentEndpointOptions, handlers: AgentHandlers): Promise<AgentEndpoint> {
		const endpoint = new AgentEndpoint(options, handlers);
		endpoint.#connection = await BrokerConnection.open({
			url: options.url,
			connectionName: `kloud-agent@${options.hostId}`,
			// A fleet of agents given the same list spreads over the cluster's nodes.
			urlOrder: 'shuffle',
			reconnect: true,
			heartbeatSeconds: options.amqpHeartbeatSeconds,
			firstConnect: 'fail-on-setup-error',
			...(options.tls === undefined ? {} : {tls: options.tls}),
			setup: async context => {
				await endpoint.#rpc.setup(context);
				await endpoint.setup(context.channel, await context.openChannel(), await context.openChannel(), options.tutorialQueue ? await context.openChannel() : undefined);
				endpoint.openConsoleChannel(await context.openChannel());
			},
		});
		endpoint.#connection.on('state', state => {
			if (state.status !== 'connected') {
				endpoint.#rpc.connectionLost();
			}

			handlers.onConnectionState?.(state);
		});
		// Replies on a connection of their own (see reply-publisher.ts: a reply to a stopped node's
		// requester makes RabbitMQ close the publishing connection).
		endpoint.#replies = await ReplyPublisher.open({
			url: options.url,
			connectionName: `kloud-replies@${options.hostId}`,
			retryMs: REPLY_RETRY_MS,
			...(options.amqpHeartbeatSeconds === undefined ? {} : {heartbeatSeconds: options.amqpHeartbeatSeconds}),
			...(options.tls === undefined ? {} : {tls: options.tls}),
		}).catch(async (error: unknown) => {
			await endpoint.#connection?.close();
			throw error;
		});
		return endpoint;
	}

	readonly topo: Topology;
	readonly #options: AgentEndpointOptions;
	readonly #handlers: AgentHandlers;
	#connection: BrokerConnection | undefined;
	#replies: ReplyPublisher | undefined;
	#workChannel: Channel | undefined;
	#workConsumer: string | undefined;
	#isAcceptingStarts = true;
	#inFlight = 0;
	#drained: (() => void) | undefined;
	#hostChannel: Channel | undefined;
	readonly #lanes = new FairLanes();
	readonly #consoleBytes = new ByteBudget(CONSOLE_BYTES_IN_FLIGHT);
	#droppedEvents = 0;
	#droppedLogged = 0;
	#droppedLoggedAt = 0;
	#tutorialChannel: Channel | undefined;
	#consoleChannel: Channel | undefined;
	#isConsoleChannelFull = false;
	/** Replies confirmed for work-queue and tutorial deliveries (by reply address and correlation id), oldest first. */
	readonly #replied = new Set<string>();
	/** Replies on their way (the replies' connection may be waiting for a reconnect), by the same key. */
	readonly #replying = new Map<string, Promise<boolean>>();
	/** For the agent's own rounds (looking for a start's token across the fleet). */
	readonly #rpc = new Rpc(() => this.connection);

	private constructor(options: AgentEndpointOptions, handlers: AgentHandlers) {
		this.#options = options;
		this.#handlers = handlers;
		this.topo = topology(options.namespace);
	}

	get connection(): BrokerConnection {
		return this.#connection!;
	}

	/** Events dropped because no agent user published them (forged, or without a user id). */
	get droppedEvents(): number {
		return this.#droppedEvents;
	}

	/**
	 * Publishes one console frame to a viewer's queue on a channel of its own (no confirms: a frame
	 * lost with the connection is like a frame the viewer's bounded queue dropped). False when it
	 * cannot go now (not connected, or the channel's buffer is full until it drains): the caller
	 * drops it and says so later. Never waits, so no viewer can hold up the agent.
	 */
	publishConsole(queue: string, content: Uint8Array): boolean {
		const channel = this.#consoleChannel;
		if (!channel || this.#isConsoleChannelFull) {
			return false;
		}

		if (!channel.publish('', queue, Buffer.from(content), {contentType: 'application/json', userId: this.connection.user})) {
			this.#isConsoleChannelFull = true;
			channel.once('drain', () => {
				this.#isConsoleChannelFull = false;
			});
		}

		return true;
	}

	private openConsoleChannel(channel: Channel): void {
		this.#consoleChannel = channel;
		this.#isConsoleChannelFull = false;
		channel.on('close', () => {
			if (this.#consoleChannel === channel) {
				this.#consoleChannel = undefined;
			}
		});
	}

	/** Publishes an event under this connection's user (the broker checks it): peers and clients trust only agent users' events. */
	async publishEvent(draft: EventDraft): Promise<void> {
		const event = makeEvent(draft, {id: randomUUID(), from: this.#options.hostId, ts: Date.now()});
		const owner = 'vm' in event.body ? event.body.vm.owner : undefined;
		await this.connection.publish(this.topo.eventExchange, this.topo.eventKey(event.type, this.#options.hostId, owner), encode(event), {
			contentType: 'application/json',
			userId: this.connection.user,
		});
	}

	/**
	 * One `vm.list` round across the fleet, as a requester runs it, under this agent's own user (an
	 * admin: it sees every tenant's VMs). Ends when every host in `expected` and in the answers'
	 * rosters has answered, or at the timeout; `missing` names the live hosts that stayed silent.
	 */
	async listRound(options: {readonly timeoutMs: number; readonly expected: readonly string[]}): Promise<{readonly snapshots: HostSnapshot[]; readonly missing: string[]}> {
		const answered = new Map<string, HostSnapshot>();
		const expected = new Set(options.expected);
		const request = makeRequest({type: 'vm.list', body: {}}, {id: randomUUID(), from: this.#options.hostId, ts: Date.now()});
		await this.#rpc.gather(this.topo.commandExchange, ALL_HOSTS_KEY, request, {
			timeoutMs: options.timeoutMs,
			isComplete: replies => {
				const reply = replies.at(-1);
				const value = reply?.ok ? parseReplyValue('vm.list', reply.value) : undefined;
				if (reply && value?.ok) {
					answered.set(reply.from, value.value);
					for (const id of value.value.roster.slice(0, MAX_ROSTER_HOSTS - expected.size)) {
						expected.add(id);
					}
				}

				return [...expected].every(id => answered.has(id));
			},
		});
		return {snapshots: [...answered.values()], missing: [...expected].filter(id => !answered.has(id)).sort()};
	}

	/**
	 * Sends one request to another host's queue under this agent's own user (an admin) and resolves
	 * with its reply; rejects when the host is not connected (`NoRouteError`) or at the timeout.
	 */
	async askHost(hostId: string, draft: RequestDraft, timeoutMs: number): Promise<Reply> {
		const request = makeRequest(draft, {id: randomUUID(), from: this.#options.hostId, ts: Date.now()});
		return this.#rpc.request(this.topo.commandExchange, this.topo.hostKey(hostId), request, {timeoutMs, mandatory: true});
	}

	/** Takes starts from the shared work queue only while the host has capacity. */
	async setAcceptingStarts(isAccepting: boolean): Promise<void> {
		this.#isAcceptingStarts = isAccepting;
		await this.syncWorkConsumer();
	}

	/** Stops taking new work, waits for requests in progress to be answered, then disconnects. */
	async close(options: {readonly timeoutMs?: number} = {}): Promise<void> {
		this.#isAcceptingStarts = false;
		await this.syncWorkConsumer().catch(() => {});
		if (this.#inFlight > 0) {
			await Promise.race([
				new Promise<void>(resolve => {
					this.#drained = resolve;
				}),
				new Promise(resolve => setTimeout(resolve, options.timeoutMs ?? 5000)),
			]);
		}

		await this.#connection?.close();
		await this.#replies?.close();
	}

	private async setup(channel: Channel, workChannel: Channel, deadChannel: Channel, tutorialChannel: Channel | undefined): Promise<void> {
		const {topo} = this;
		const {hostId} = this.#options;
		await declareShared(channel, topo);
		const hostQueue = topo.hostQueue(hostId);
		try {
			await channel.assertQueue(hostQueue, {exclusive: true, autoDelete: true, durable: false});
		} catch (error) {
			throw new DuplicateHostError(`another agent with host id "${hostId}" is already connected to this namespace`, {cause: error});
		}

		await channel.bindQueue(hostQueue, topo.commandExchange, ALL_HOSTS_KEY);
		await channel.bindQueue(hostQueue, topo.commandExchange, topo.hostKey(hostId));
		// Manual acks, so the prefetch bounds what a flood can make this agent hold (with noAck it
		// bounds nothing: the broker pushes the whole queue). A message is acked once answered. On the
		// main channel: should it die, the connection starts over (and the consumer with it).
		await channel.prefetch(HOST_PREFETCH);
		this.#hostChannel = channel;
		await channel.consume(hostQueue, message => this.onRequest(channel, message, 'host'), {exclusive: true, noAck: false});

		const {queue: eventQueue} = await channel.assertQueue('', {exclusive: true, autoDelete: true, durable: false});
		await channel.bindQueue(eventQueue, topo.eventExchange, 'host.#');
		await channel.consume(eventQueue, message => this.onEvent(message), {noAck: true});

		// One start at a time per agent: the next one stays in the queue for a host that is free.
		await workChannel.prefetch(1);
		this.#workChannel = workChannel;
		this.#workConsumer = undefined;
		await this.syncWorkConsumer();

		// Starts that died in the start queue: every agent consumes, whichever gets one answers it.
		await deadChannel.prefetch(16);
		await deadChannel.consume(topo.deadLetters, message => this.onDeadLetter(deadChannel, message), {noAck: false});

		this.#tutorialChannel = tutorialChannel;
		if (tutorialChannel && this.#options.tutorialQueue) {
			// Declared exactly as the tutorial's pika code does (not durable), or RabbitMQ refuses it.
			await tutorialChannel.assertQueue(this.#options.tutorialQueue, {durable: false, exclusive: false, autoDelete: false});
			await tutorialChannel.prefetch(1);
			await tutorialChannel.consume(this.#options.tutorialQueue, message => this.onTutorial(tutorialChannel, message), {noAck: false});
		}
	}

	private async syncWorkConsumer(): Promise<void> {
		const channel = this.#workChannel;
		if (!channel) {
			return;
		}

		if (this.#isAcceptingStarts && !this.#workConsumer) {
			const placeholder = 'pending';
			this.#workConsumer = placeholder;
			try {
				const {consumerTag} = await channel.consume(this.topo.startQueue, message => this.onRequest(channel, message, 'work'), {noAck: false});
				this.#workConsumer = consumerTag;
			} catch (error) {
				this.#workConsumer = undefined;
				throw error;
			}

			if (!this.#isAcceptingStarts) {
				await this.syncWorkConsumer();
			}
		} else if (!this.#isAcceptingStarts && this.#workConsumer && this.#workConsumer !== 'pending') {
			const tag = this.#workConsumer;
			this.#workConsumer = undefined;
			await channel.cancel(tag).catch(() => {});
		}
	}

	private onRequest(channel: Channel, message: ConsumeMessage | null, via: 'host' | 'work'): void {
		if (!message) {
			return;
		}

		this.#inFlight++;
		const parsed = parseRequest(message.content);
		const serve = async () =>
			this.serve(channel, message, via, parsed)
				.catch((error: unknown) => this.#options.log.error({err: error}, 'request handling failed'))
				.finally(() => {
					this.#inFlight--;
					if (this.#inFlight === 0) {
						this.#drained?.();
					}
				});
		// A malformed message is answered at once (no handler runs): only real work waits in a lane.
		if (via === 'work' || !parsed.ok) {
			void serve();
			return;
		}

		// Each sender's requests in a lane of their own: a flood fills its own lane, then is told `busy`.
		const {userId} = message.properties as {userId?: unknown};
		const sender = senderOf(userId);
		if (!this.#lanes.submit(sender, serve)) {
			this.#inFlight--;
			void this.refuseBusy(channel, message, sender, parsed.value);
		}
	}

	/** Answers a request over its sender's share with `busy` (it is not lost: the sender hears why). */
	private async refuseBusy(channel: Channel, message: ConsumeMessage, sender: string, request: Request): Promise<void> {
		const {replyTo, correlationId} = message.properties as {replyTo?: string; correlationId?: string};
		this.#options.log.debug({sender, held: this.#lanes.held(sender)}, 'busy: refused a request over its sender\'s share');
		this.ackHost(channel, message);
		if (replyTo) {
			const reason = `host ${this.#options.hostId} is busy with ${this.#lanes.held(sender)} requests from ${sender === '' ? 'senders without a user id' : sender}: try again shortly`;
			await this.reply(replyTo, correlationId ?? request.id, {ok: false, code: 'busy', reason}, {sender}).catch(() => {});
		}
	}

	/** Acks a host-queue message if its channel is still the live one (a dead channel's messages died with it). */
	private ackHost(channel: Channel, message: ConsumeMessage): void {
		if (channel !== this.#hostChannel) {
			return;
		}

		try {
			channel.ack(message);
		} catch (error) {
			this.#options.log.debug({err: error}, 'ack after the channel closed');
		}
	}

	private async serve(channel: Channel, message: ConsumeMessage, via: 'host' | 'work', parsed: ParsedRequest): Promise<void> {
		// Console data read and not yet sent is bounded over all requests: a console flood waits here, before reading.
		const consoleBytes = parsed.ok && parsed.value.type === 'vm.console' ? (parsed.value.body.bytes ?? DEFAULT_CONSOLE_BYTES) : 0;
		if (consoleBytes === 0) {
			await this.answer(channel, message, via, parsed);
			return;
		}

		await this.#consoleBytes.with(consoleBytes, async () => this.answer(channel, message, via, parsed));
	}

	/** Runs the handler, replies, and acks (or for a work-queue start, puts it back). */
	private async answer(channel: Channel, message: ConsumeMessage, via: 'host' | 'work', parsed: ParsedRequest): Promise<void> {
		const {replyTo, correlationId, userId, headers, messageId} = message.properties as {replyTo?: string; correlationId?: string; userId?: string; headers?: Record<string, unknown>; messageId?: string};
		let result: HandlerResult;
		if (parsed.ok) {
			const isRepeat = message.fields.redelivered || headers?.[REPEAT_HEADER] === true;
			this.#options.log.debug({type: parsed.value.type, via, routingKey: message.fields.routingKey, from: parsed.value.from, userId, isRepeat}, 'request');
			try {
				const identity = {
					...(typeof messageId === 'string' ? {messageId} : {}),
					...(typeof correlationId === 'string' ? {correlationId} : {}),
					...(typeof replyTo === 'string' ? {replyTo} : {}),
				};
				result = await this.#handlers.handleRequest(parsed.value, {via, isRepeat, ...(typeof userId === 'string' ? {userId} : {}), ...identity});
			} catch (error) {
				this.#options.log.error({err: error, type: parsed.value.type}, 'request handler threw');
				result = {ok: false, code: 'internal', reason: `internal error: ${(error as Error).message}`};
			}
		} else {
			this.#options.log.warn({reason: parsed.error.reason, bytes: message.content.length}, 'refused a malformed request');
			result = {ok: false, code: parsed.error.code, reason: parsed.error.reason};
		}

		if (result.ok === 'requeue') {
			if (via === 'work') {
				// On a channel that died meanwhile the broker has put the message back already.
				if (channel === this.#workChannel) {
					try {
						channel.nack(message, false, true);
					} catch (error) {
						this.#options.log.debug({err: error}, 'nack after the channel closed');
					}
				}

				return;
			}

			// Only a shared-queue start can go back for another host; one sent here gets a clear no.
			result = {ok: false, code: 'no_capacity', reason: `host ${this.#options.hostId} has no capacity now`};
		}

		if (via === 'host') {
			// Served: acked now, not once its reply is out. The host queue dies with this connection
			// (nothing to redeliver), and a reply waiting its turn (replies go out one sender after
			// another) must not hold one of the prefetch slots the other senders' requests need.
			this.ackHost(channel, message);
		}

		if (replyTo && (via === 'host' || channel === this.#workChannel)) {
			const re = correlationId ?? (parsed.ok ? parsed.value.id : '');
			const replyOptions = {...(parsed.ok ? {requestTs: parsed.value.ts} : {}), sender: senderOf(userId)};
			try {
				if (via === 'host') {
					await this.reply(replyTo, re, result, replyOptions);
				} else {
					// A start whose channel died is delivered again: that delivery answers, not this one.
					const isOurs = () => channel === this.#workChannel;
					await this.replyOnce(replyTo, re, message.fields.redelivered, async () => this.reply(replyTo, re, result, {isOurs, ...replyOptions}));
				}
			} catch (error) {
				// The request was served: whatever became of its reply, it is acked (a host-queue one
				// above, a start below). A message left unacked holds one of the channel's prefetch
				// slots for good (a requester writes its own reply address: a hostile one must not be
				// able to wedge the queue).
				this.#options.log.error({err: error, replyTo: replyTo.slice(0, 200)}, 'reply failed');
			}
		}

		if (via === 'host') {
			return;
		}

		if (channel !== this.#workChannel) {
			// The connection dropped while this was served: the broker put the message back already,
			// and its next delivery is answered from the start's token. Nothing to ack on a dead channel.
			return;
		}

		try {
			if (parsed.ok) {
				channel.ack(message);
			} else {
				// Never redeliver what can never parse: drop it (or dead-letter it where a DLX is set).
				channel.nack(message, false, false);
			}
		} catch (error) {
			// The connection dropped while the reply went out on its own: the broker delivers the
			// message again, and that delivery is not answered twice (`replyOnce`).
			this.#options.log.debug({err: error}, 'ack after the channel closed');
		}
	}

	/**
	 * Sends one reply to a Direct Reply-To address. A reply that fails because this agent's
	 * connection dropped is sent again once it is back (the requester's address outlives our
	 * connection); replies to other addresses are refused.
	 */
	private async reply(replyTo: string, re: string, result: Exclude<HandlerResult, {ok: 'requeue'}>, options: ReplyOptions = {}): Promise<boolean> {
		if (!replyTo.startsWith(REPLY_ADDRESS_PREFIX)) {
			this.#options.log.warn({replyTo: replyTo.slice(0, 200)}, 'refused to reply to a queue that is not a Direct Reply-To address');
			return false;
		}

		const stamp = {id: randomUUID(), from: this.#options.hostId, ts: Date.now()};
		const reply = result.ok ? okReply(re, result.value, stamp) : errorReply(re, result.code, result.reason, stamp);
		return this.sendReply(replyTo, encode(reply), {correlationId: re, contentType: 'application/json'}, options);
	}

	/**
	 * Publishes a reply on the replies' own connection (it waits there for a reconnect). True once
	 * it is confirmed, or once it is known it can never arrive (its requester was on a broker node
	 * that went down: nothing to answer again). False when it could not be sent: unless the message
	 * it answers is redeliverable and its channel died (then its next delivery answers), it is lost.
	 */
	private async sendReply(replyTo: string, content: Uint8Array, properties: {correlationId?: string; contentType?: string}, options: ReplyOptions = {}): Promise<boolean> {
		try {
			const outcome = await this.#replies!.send(replyTo, content, properties, options.requestTs, options.sender);
			if (outcome === 'dead') {
				this.#options.log.info({replyTo, correlationId: properties.correlationId}, 'not replying: the requester\'s broker node went down after it asked');
			} else if (outcome === 'refused') {
				this.#options.log.warn({replyTo: replyTo.slice(0, 200), correlationId: properties.correlationId, sender: options.sender}, 'not replying: an unknown broker node in the address, and this sender\'s reply addresses kept crashing the connection');
			}

			return true;
		} catch (error) {
			if (!(error instanceof ReplyNotSentError)) {
				throw error;
			}

			if (error instanceof ReplyDroppedError) {
				// A flood's own replies: one line each would flood the log too.
				this.#options.log.debug({replyTo, sender: options.sender}, 'reply dropped: too many waiting for its sender');
				return false;
			}

			this.#options.log.warn({err: error, replyTo}, options.isOurs?.() === false ? 'reply not sent: its message will be delivered again' : 'could not deliver a reply');
			return false;
		}
	}

	/**
	 * Replies to a redeliverable message unless its reply went out already: a delivery whose reply
	 * was confirmed but whose ack was lost comes back, and must not be answered a second time.
	 */
	private async replyOnce(replyTo: string, re: string, isRedelivered: boolean, send: () => Promise<boolean>): Promise<void> {
		const key = `${replyTo}\u0000${re}`;
		// The same message delivered twice while the first delivery's reply is still on its way (its
		// connection dropped and the replies' own connection waits for a reconnect): the second waits
		// for that reply, and answers only if it could not be sent.
		const pending = this.#replying.get(key);
		if (pending !== undefined && (await pending)) {
			this.#options.log.info({correlationId: re}, 'the message was answered by its other delivery: not answering again');
			return;
		}

		if (isRedelivered && this.#replied.has(key)) {
			this.#options.log.info({correlationId: re}, 'a redelivered message was answered already: not answering again');
			return;
		}

		const sending = send();
		this.#replying.set(key, sending);
		let isSent: boolean;
		try {
			isSent = await sending;
		} finally {
			if (this.#replying.get(key) === sending) {
				this.#replying.delete(key);
			}
		}

		if (isSent) {
			this.#replied.add(key);
			if (this.#replied.size > REPLIED_MEMORY) {
				const oldest = this.#replied.values().next().value;
				if (oldest !== undefined) {
					this.#replied.delete(oldest);
				}
			}
		}
	}

	private onDeadLetter(channel: Channel, message: ConsumeMessage | null): void {
		if (!message) {
			return;
		}

		const {replyTo, correlationId, headers, userId} = message.properties as {replyTo?: string; correlationId?: string; headers?: Record<string, unknown>; userId?: string};
		const answer = deadLetterAnswer({headers, content: message.content, startQueue: this.topo.startQueue});
		this.#inFlight++;
		void (async () => {
			try {
				if (answer && replyTo && correlationId) {
					const parsed = parseRequest(message.content);
					let result: HandlerResult = {ok: false, ...answer};
					if (parsed.ok && parsed.value.type === 'vm.start' && this.#handlers.handleDeadStart) {
						result = await this.#handlers.handleDeadStart(parsed.value, answer, typeof userId === 'string' ? {userId} : {});
					}

					if (result.ok !== 'requeue') {
						this.#options.log.info({result: result.ok ? 'found its VM' : result.reason, correlationId}, 'a start died in the queue: answering its requester');
						await this.reply(replyTo, correlationId, result, {...(parsed.ok ? {requestTs: parsed.value.ts} : {}), sender: senderOf(userId)});
					}
				}
			} finally {
				// Acked whatever became of the answer: an unacked dead letter holds a prefetch slot for good.
				channel.ack(message);
			}
		})()
			.catch((error: unknown) => this.#options.log.warn({err: error}, 'dead letter not handled'))
			.finally(() => {
				this.#inFlight--;
				if (this.#inFlight === 0) {
					this.#drained?.();
				}
			});
	}

	private onEvent(message: ConsumeMessage | null): void {
		if (!message) {
			return;
		}

		if (!isTrustedEvent(message.properties.userId, this.agentUsers)) {
			this.noteDropped(message);
			return;
		}

		const parsed = parseEvent(message.content);
		if (parsed.ok) {
			this.#handlers.handleEvent(parsed.value);
		}
	}

	private get agentUsers(): ReadonlySet<string> {
		return this.#options.agentUsers ?? new Set([this.connection.user]);
	}

	/** Counts an event no agent user published, and says so in the log at most every `DROPPED_LOG_MS`. */
	private noteDropped(message: ConsumeMessage): void {
		this.#droppedEvents++;
		const now = Date.now();
		if (now - this.#droppedLoggedAt >= DROPPED_LOG_MS) {
			const {userId} = message.properties as {userId?: unknown};
			this.#options.log.warn(
				{dropped: this.#droppedEvents - this.#droppedLogged, droppedTotal: this.#droppedEvents, routingKey: message.fields.routingKey.slice(0, 200), userId: typeof userId === 'string' ? userId : null},
				'dropped events not published by an agent user',
			);
			this.#droppedLogged = this.#droppedEvents;
			this.#droppedLoggedAt = now;
		}
	}

	private onTutorial(channel: Channel, message: ConsumeMessage | null): void {
		if (!message || !this.#handlers.handleTutorial) {
			return;
		}

		const {replyTo, correlationId, messageId, userId} = message.properties as {replyTo?: string; correlationId?: string; messageId?: string; userId?: string};
		let settle: (isSettled: boolean) => void = () => {};
		const settled = new Promise<boolean>(resolve => {
			settle = resolve;
		});
		const delivery: TutorialDelivery = {
			isRepeat: message.fields.redelivered,
			settled,
			...(typeof messageId === 'string' ? {messageId} : {}),
			...(typeof correlationId === 'string' ? {correlationId} : {}),
			...(typeof replyTo === 'string' ? {replyTo} : {}),
			...(typeof userId === 'string' ? {userId} : {}),
		};
		this.#options.log.debug({isRepeat: delivery.isRepeat, replyTo: replyTo ?? null}, 'tutorial message');
		this.#inFlight++;
		void this.#handlers
			.handleTutorial(message.content, delivery)
			.then(async response => {
				const {status, reason} = (response ?? {}) as {status?: unknown; reason?: unknown};
				if (status === 'error') {
					this.#options.log.warn({reason, replyTo: replyTo ?? null}, 'refused a tutorial message');
				}

				// A delivery whose channel died comes again: that one answers.
				const isOurs = () => channel === this.#tutorialChannel;
				if (response !== undefined && replyTo && isOurs()) {
					const content = Buffer.from(JSON.stringify(response));
					const re = correlationId ?? messageId ?? createHash('sha256').update(message.content).digest('base64url');
					await this.replyOnce(replyTo, re, message.fields.redelivered, async () => this.sendReply(replyTo, content, correlationId ? {correlationId} : {}, {isOurs, sender: senderOf(userId)}));
				}
			})
			.catch((error: unknown) => this.#options.log.error({err: error}, 'tutorial message failed'))
			.finally(() => {
				void this.settle(channel, message, settle);
				this.#inFlight--;
				if (this.#inFlight === 0) {
					this.#drained?.();
				}
			});
	}

	/**
	 * Acks a tutorial delivery, then proves the ack arrived with a round trip on the same channel (the
	 * broker handles a channel's frames in order): until then, the delivery may come again.
	 */
	private async settle(channel: Channel, message: ConsumeMessage, settle: (isSettled: boolean) => void): Promise<void> {
		if (channel !== this.#tutorialChannel) {
			settle(false);
			return;
		}

		try {
			channel.ack(message);
			await channel.checkQueue(this.#options.tutorialQueue!);
			settle(true);
		} catch {
			settle(false);
		}
	}
}
