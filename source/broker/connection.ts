/**
 * One named AMQP connection with a confirm channel, re-established with backoff after a drop.
 * The `setup` callback declares topology and consumers; it runs again after every reconnect,
 * because a new connection has none of the old one's channels, queues or consumers.
 */
import {EventEmitter} from 'node:events';
import amqp, {type Channel, type ChannelModel, type ConfirmChannel, type Options} from 'amqplib';

export type ConnectionState =
	| {readonly status: 'connecting'}
	| {readonly status: 'connected'; readonly since: number}
	| {readonly status: 'disconnected'; readonly error: string; readonly retryAt: number | null};

export type SetupContext = {
	/** Confirm channel for publishing and light consumers. */
	readonly channel: ConfirmChannel;
	/** Opens another channel on the same connection (for a consumer with its own prefetch). */
	openChannel(): Promise<Channel>;
};

export type ConnectOptions = {
	readonly url: string;
	/** Shown in `rabbitmqctl list_connections name`, e.g. `kloud-agent@host-a`. */
	readonly connectionName: string;
	/** Keep reconnecting with backoff after a drop (agent, TUI); a CLI run fails fast instead. */
	readonly reconnect: boolean;
	/** AMQP heartbeat in seconds, unless the URL sets one; a hung peer is noticed after ~3×. */
	readonly heartbeatSeconds?: number;
	readonly setup: (context: SetupContext) => Promise<void>;
	/**
	 * With `reconnect`, what a failed first attempt does: keep retrying (default), give up at once
	 * when the broker was reached but the setup was refused (e.g. a duplicate host id), or give up
	 * at once whatever failed (a CLI run: an unreachable broker is an error, a later drop is not).
	 */
	readonly firstConnect?: 'retry' | 'fail-on-setup-error' | 'fail';
	/** Certificates for `amqps://` URLs. */
	readonly tls?: TlsOptions;
};

/** PEM contents (not paths) for an `amqps://` connection: the CA to trust, and a client certificate. */
export type TlsOptions = {
	/** CA certificates that signed the broker's certificate (else the system's CAs). */
	readonly ca?: readonly Buffer[];
	/** Client certificate and its key, for brokers that authenticate clients by certificate. */
	readonly cert?: Buffer;
	readonly key?: Buffer;
};

/** The TLS options only make sense with an `amqps://` URL: say so instead of silently ignoring them. */
export class TlsConfigError extends Error {
	override name = 'TlsConfigError';
}

/**
 * The socket options `amqplib.connect` gets: the connection's name, TCP_NODELAY, a connect timeout,
 * and for `amqps://` the CA and client certificate (amqplib hands them to `tls.connect`).
 */
export function socketOptions(options: Pick<ConnectOptions, 'url' | 'connectionName' | 'tls'>): Record<string, unknown> {
	const tls = options.tls ?? {};
	const hasTls = tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined;
	if (hasTls && !options.url.startsWith('amqps://')) {
		throw new TlsConfigError(`certificate options need an amqps:// URL, not ${redactUrl(options.url)}`);
	}

	if ((tls.cert === undefined) !== (tls.key === undefined)) {
		throw new TlsConfigError('a client certificate needs its key, and a key its certificate');
	}

	return {
		clientProperties: {connection_name: options.connectionName},
		timeout: 5000,
		// A reply goes out as several frames: without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms.
		noDelay: true,
		...(tls.ca === undefined ? {} : {ca: [...tls.ca]}),
		...(tls.cert === undefined ? {} : {cert: tls.cert}),
		...(tls.key === undefined ? {} : {key: tls.key}),
	};
}

/**
 * The RabbitMQ user a URL logs in as (amqplib's default is `guest`): requests carry it as their
 * `userId`, which the broker checks against the connection's user.
 */
export function urlUser(url: string): string {
	try {
		const {username} = new URL(url);
		return username === '' ? 'guest' : decodeURIComponent(username);
	} catch {
		return 'guest';
	}
}

/** The broker answered, but refused the topology or a consumer: retrying will not help soon. */
export class SetupError extends Error {
	override name = 'SetupError';
}

export class BrokerUnavailableError extends Error {
	override name = 'BrokerUnavailableError';
}

/** The URL with an AMQP heartbeat of `seconds`, unless it sets one already. */
export function withHeartbeat(url: string, seconds: number): string {
	const parsed = new URL(url);
	if (!parsed.searchParams.has('heartbeat')) {
		parsed.searchParams.set('heartbeat', String(seconds));
	}

	return parsed.toString();
}

/** The URL with its password hidden, for logs and the TUI header. */
export function redactUrl(url: string): string {
	try {
		const parsed = new URL(url);
		if (parsed.password) {
			parsed.password = '***';
		}

		return parsed.toString();
	} catch {
		return '(invalid URL)';
	}
}

export declare interface BrokerConnection {
	on(event: 'state', listener: (state: ConnectionState) => void): this;
	on(event: 'error', listener: (error: Error) => void): this;
}

/** Calls into amqplib live here; everything above deals in bytes, exchange names and promises. */
export class BrokerConnection extends EventEmitter {
	static async open(options: ConnectOptions): Promise<BrokerConnection> {
		const connection = new BrokerConnection(options);
		await connection.start();
		return connection;
	}

	#state: ConnectionState = {status: 'connecting'};
	#model: ChannelModel | undefined;
	#channel: ConfirmChannel | undefined;
	#closing = false;
	#retryTimer: NodeJS.Timeout | undefined;
	#attempt = 0;
	readonly #waiters = new Set<(isConnected: boolean) => void>();
	readonly #options: ConnectOptions;

	private constructor(options: ConnectOptions) {
		super();
		this.#options = options;
		// A listener must exist: an unhandled 'error' event would kill the process.
		this.on('error', () => {});
	}

	get state(): ConnectionState {
		return this.#state;
	}

	get isConnected(): boolean {
		return this.#state.status === 'connected';
	}

	/** The user this connection logs in as: what the broker accepts as a message's `userId`. */
	get user(): string {
		return urlUser(this.#options.url);
	}

	/** Resolves true once connected (at once if connected now), false if `timeoutMs` passes first or the connection is closed. */
	async waitUntilConnected(timeoutMs: number): Promise<boolean> {
		if (this.isConnected) {
			return true;
		}

		if (this.#closing || timeoutMs <= 0) {
			return false;
		}

		// One shared set of waiters, not a listener each: a burst of requests may all be waiting.
		return new Promise<boolean>(resolve => {
			const waiter = (isConnected: boolean) => {
				clearTimeout(timer);
				this.#waiters.delete(waiter);
				resolve(isConnected);
			};

			const timer = setTimeout(() => waiter(false), timeoutMs);
			this.#waiters.add(waiter);
		});
	}

	/** The live confirm channel, or a clear error when the broker is not reachable right now. */
	channel(): ConfirmChannel {
		if (!this.#channel) {
			throw new BrokerUnavailableError(
				this.#state.status === 'disconnected' ? `not connected to the broker: ${this.#state.error}` : 'not connected to the broker yet',
			);
		}

		return this.#channel;
	}

	/** A plain channel of its own on the live connection (e.g. a console's consumer); it dies with the connection. */
	async openChannel(): Promise<Channel> {
		const model = this.#model;
		if (!model) {
			throw new BrokerUnavailableError('not connected to the broker');
		}

		const channel = await model.createChannel();
		channel.on('error', (error: Error) => this.emit('error', error));
		return channel;
	}

	/** Publishes and waits for the broker's confirm. */
	async publish(exchange: string, routingKey: string, content: Uint8Array, options: Options.Publish = {}): Promise<void> {
		const channel = this.channel();
		await new Promise<void>((resolve, reject) => {
			channel.publish(exchange, routingKey, Buffer.from(content), options, error => {
				if (error) {
					reject(new Error(`broker did not confirm the message to ${exchange || 'the default exchange'}/${routingKey}`, {cause: error}));
				} else {
					resolve();
				}
			});
		});
	}

	async close(): Promise<void> {
		this.#closing = true;
		clearTimeout(this.#retryTimer);
		for (const waiter of [...this.#waiters]) {
			waiter(false);
		}

		const model = this.#model;
		const channel = this.#channel;
		this.#model = undefined;
		this.#channel = undefined;
		try {
			// Closing the channel first flushes pending acks and publishes (a bare connection close loses them).
			await channel?.close();
		} catch {}

		try {
			await model?.close();
		} catch {}
	}

	private setState(state: ConnectionState): void {
		this.#state = state;
		this.emit('state', state);
		// Connected, or disconnected for good (no retry coming): tell whoever waits.
		if (state.status === 'connected' || (state.status === 'disconnected' && state.retryAt === null)) {
			for (const waiter of [...this.#waiters]) {
				waiter(state.status === 'connected');
			}
		}
	}

	private async start(): Promise<void> {
		try {
			await this.connectOnce();
		} catch (error) {
			if (error instanceof SetupError && this.#options.firstConnect === 'fail-on-setup-error') {
				throw error;
			}

			if (!this.#options.reconnect || this.#options.firstConnect === 'fail') {
				throw new BrokerUnavailableError(`cannot reach the broker at ${redactUrl(this.#options.url)}: ${describe(error)}`, {cause: error});
			}

			this.scheduleRetry(error);
		}
	}

	private async connectOnce(): Promise<void> {
		const url = withHeartbeat(this.#options.url, this.#options.heartbeatSeconds ?? 5);
		const model = await amqp.connect(url, socketOptions(this.#options));
		model.on('error', (error: Error) => this.emit('error', error));
		model.on('close', (error?: Error) => this.onDrop(model, error ?? new Error('connection closed')));
		try {
			const channel = await model.createConfirmChannel();
			channel.on('error', (error: Error) => this.emit('error', error));
			channel.on('close', () => {
				// A channel error (404, 406) leaves the connection up but the channel dead: start over.
				if (this.#channel === channel && !this.#closing) {
					void model.close().catch(() => {});
				}
			});
			try {
				await this.#options.setup({
					channel,
					openChannel: async () => {
						const extra = await model.createChannel();
						extra.on('error', (error: Error) => this.emit('error', error));
						return extra;
					},
				});
			} catch (error) {
				throw new SetupError((error as Error).message, {cause: error});
			}

			if (this.#closing) {
				// Closed while this reconnect was under way: a connection made now would keep the process alive.
				await model.close().catch(() => {});
				return;
			}

			this.#model = model;
			this.#channel = channel;
			this.#attempt = 0;
			this.setState({status: 'connected', since: Date.now()});
		} catch (error) {
			await model.close().catch(() => {});
			throw error;
		}
	}

	private onDrop(model: ChannelModel, error: Error): void {
		if (this.#model !== model || this.#closing) {
			return;
		}

		this.#model = undefined;
		this.#channel = undefined;
		if (this.#options.reconnect) {
			this.scheduleRetry(error);
		} else {
			this.setState({status: 'disconnected', error: describe(error), retryAt: null});
		}
	}

	private scheduleRetry(error: unknown): void {
		if (this.#closing) {
			return;
		}

		this.#attempt++;
		const delay = Math.min(100 * 2 ** (this.#attempt - 1), 5000) * (0.8 + Math.random() * 0.4);
		this.setState({status: 'disconnected', error: describe(error), retryAt: Date.now() + delay});
		this.#retryTimer = setTimeout(() => {
			this.setState({status: 'connecting'});
			this.connectOnce().catch((nextError: unknown) => this.scheduleRetry(nextError));
		}, delay);
	}
}

function describe(error: unknown): string {
	if (error instanceof Error) {
		const code = (error as {code?: unknown}).code;
		return error.message || (typeof code === 'string' ? code : error.name);
	}

	return String(error);
}
