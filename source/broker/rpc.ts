/**
 * Request/reply over RabbitMQ's Direct Reply-To: one request gets one reply, a scatter-gather
 * round collects one reply per host. Replies are matched by correlation id.
 */
import {randomUUID} from 'node:crypto';
import type {ConsumeMessage, Message} from 'amqplib';
import {encode, parseReply, type Reply, type Request} from '../protocol/index.js';
import {PublishNackedError, type BrokerConnection, type SetupContext} from './connection.js';

const REPLY_TO = 'amq.rabbitmq.reply-to';

export class RequestTimeoutError extends Error {
	override name = 'RequestTimeoutError';
}

export class NoRouteError extends Error {
	override name = 'NoRouteError';
}

export class ConnectionLostError extends Error {
	override name = 'ConnectionLostError';
}

/** The broker refused the request (a nack: its queue is full). Retried like a lost one unless the caller says otherwise. */
export class RequestRefusedError extends ConnectionLostError {
	override name = 'RequestRefusedError';
}

type Pending = {
	onReply(reply: Reply, from: string): void;
	fail(error: Error): void;
};

export type GatherOptions = {
	readonly timeoutMs: number;
	/** True once every reply the round waits for is in; checked after each reply. */
	readonly isComplete: (replies: readonly Reply[]) => boolean;
};

export type GatherResult = {readonly replies: readonly Reply[]; readonly timedOut: boolean; readonly durationMs: number};

export class Rpc {
	readonly #pending = new Map<string, Pending>();
	readonly #connection: () => BrokerConnection;

	/** Takes the connection lazily: the reply consumer is set up while the connection opens. */
	constructor(connection: () => BrokerConnection) {
		this.#connection = connection;
	}

	/** Call when the connection drops: the reply address died with it, nothing will answer now. */
	connectionLost(): void {
		this.failAll(new ConnectionLostError('connection to the broker lost before the reply came'));
	}

	/** Run inside the connection's setup: the reply consumer must exist before any publish. */
	async setup({channel}: SetupContext): Promise<void> {
		channel.on('return', (message: Message) => {
			const id = message.properties.correlationId as string | undefined;
			const pending = id ? this.#pending.get(id) : undefined;
			pending?.fail(new NoRouteError(`no route for ${message.fields.routingKey}`));
		});
		await channel.consume(REPLY_TO, (message: ConsumeMessage | null) => this.onMessage(message), {noAck: true});
	}

	/** Sends one request and resolves with its reply (an error reply is a reply, not a throw). */
	async request(
		exchange: string,
		routingKey: string,
		request: Request,
		options: {
			readonly timeoutMs: number;
			readonly mandatory?: boolean;
			/** How long the request may wait in a queue before it expires (default: the timeout). */
			readonly expirationMs?: number;
			/** Extra AMQP headers (e.g. the attempt number of a retried start). */
			readonly headers?: Readonly<Record<string, string | number | boolean>>;
		},
	): Promise<Reply> {
		const result = await this.round(exchange, routingKey, request, {
			timeoutMs: options.timeoutMs,
			mandatory: options.mandatory ?? false,
			...(options.expirationMs === undefined ? {} : {expirationMs: options.expirationMs}),
			...(options.headers === undefined ? {} : {headers: options.headers}),
			isComplete: replies => replies.length > 0,
		});
		const reply = result.replies[0];
		if (!reply) {
			throw new RequestTimeoutError(`no reply to ${request.type} within ${options.timeoutMs} ms`);
		}

		return reply;
	}

	/** Publishes once and gathers replies until `isComplete` or the timeout, whichever is first. */
	async gather(exchange: string, routingKey: string, request: Request, options: GatherOptions): Promise<GatherResult> {
		return this.round(exchange, routingKey, request, {...options, mandatory: false});
	}

	private async round(
		exchange: string,
		routingKey: string,
		request: Request,
		options: GatherOptions & {
			readonly mandatory: boolean;
			readonly expirationMs?: number;
			readonly headers?: Readonly<Record<string, string | number | boolean>>;
		},
	): Promise<GatherResult> {
		const correlationId = request.id || randomUUID();
		const started = performance.now();
		const replies: Reply[] = [];
		return new Promise<GatherResult>((resolve, reject) => {
			const finish = (timedOut: boolean) => {
				clearTimeout(timer);
				this.#pending.delete(correlationId);
				resolve({replies, timedOut, durationMs: performance.now() - started});
			};

			const timer = setTimeout(() => finish(true), options.timeoutMs);
			this.#pending.set(correlationId, {
				onReply: reply => {
					replies.push(reply);
					if (options.isComplete(replies)) {
						finish(false);
					}
				},
				fail: error => {
					clearTimeout(timer);
					this.#pending.delete(correlationId);
					reject(error);
				},
			});
			const connection = this.#connection();
			connection
				.publish(exchange, routingKey, encode(request), {
					// The broker refuses (406) a userId other than the connection's own: agents can trust it.
					userId: connection.user,
					...(options.headers === undefined ? {} : {headers: {...options.headers}}),
					replyTo: REPLY_TO,
					correlationId,
					contentType: 'application/json',
					mandatory: options.mandatory,
					// A request nobody takes in time is useless later: let it expire in the queue.
					expiration: String(Math.max(1, Math.ceil(options.expirationMs ?? options.timeoutMs))),
				})
				.catch((error: unknown) => {
					// Not sent, or not confirmed: as good as lost with the connection, and as safe to retry.
					const Lost = error instanceof PublishNackedError ? RequestRefusedError : ConnectionLostError;
					this.#pending.get(correlationId)?.fail(new Lost(`${request.type} was not confirmed by the broker: ${(error as Error).message}`, {cause: error}));
				});
		});
	}

	private onMessage(message: ConsumeMessage | null): void {
		if (!message) {
			return;
		}

		const id = message.properties.correlationId as string | undefined;
		const pending = id ? this.#pending.get(id) : undefined;
		if (!pending) {
			return; // a late reply to a finished round
		}

		const parsed = parseReply(message.content);
		if (parsed.ok) {
			pending.onReply(parsed.value, parsed.value.from);
		}
	}

	private failAll(error: Error): void {
		for (const pending of [...this.#pending.values()]) {
			pending.fail(error);
		}
	}
}
