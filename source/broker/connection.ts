/**
 * One named AMQP connection with a confirm channel, re-established with backoff after a drop.
 * The `setup` callback declares topology and consumers; it runs again after every reconnect,
 * because a new connection has none of the old one's channels, queues or consumers.
 *
 * The URL may list several brokers (`amqp://a:5672,amqp://b:5672`: the nodes of one RabbitMQ
 * cluster). The connection uses one at a time; when it fails or drops, the next in the list is
 * tried, and after a whole round of failures the backoff doubles (100 ms … 5 s). Agents shuffle the
 * list once at start (`urlOrder: 'shuffle'`) so a fleet spreads over the nodes; the CLI and TUI take
 * it in order, so an operator's nearest node comes first and a run is predictable.
 */
import {EventEmitter} from 'node:events';
import amqp, {type Channel, type ChannelModel, type ConfirmChannel, type Options} from 'amqplib';
import {brokerUrls, redactUrl, urlUser} from './url.js';

export {brokerUrls, BrokerUrlError} from './url.js';

export {redactUrl, urlUser} from './url.js';

export type ConnectionState =
	| {readonly status: 'connecting'}
	/** `broker`: `host:port` of the node this connection is on (one of the URL list). */
	| {readonly status: 'connected'; readonly since: number; readonly broker: string}
	| {readonly status: 'disconnected'; readonly error: string; readonly retryAt: number | null};

export type SetupContext = {
	/** Confirm channel for publishing and light consumers. */
	readonly channel: ConfirmChannel;
	/** Opens another channel on the same connection (for a consumer with its own prefetch). */
	openChannel(): Promise<Channel>;
};

export type ConnectOptions = {
	/** One broker URL, or several separated by commas (nodes of one cluster). */
	readonly url: string;
	/** Which URL of a list to try first: in the given order (default), or shuffled once (agents: spreads load). */
	readonly urlOrder?: 'in-order' | 'shuffle';
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
	const plain = hasTls ? brokerUrls(options.url).find(url => !url.startsWith('amqps://')) : undefined;
	if (plain !== undefined) {
		throw new TlsConfigError(`certificate options need an amqps:// URL, not ${redactUrl(plain)}`);
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

/** `host:port` of a broker URL (the port amqplib uses when the URL has none): names the node a client is on. */
export function brokerAddress(url: string): string {
	const parsed = new URL(url);
	return `${parsed.hostname}:${parsed.port || (parsed.protocol === 'amqps:' ? '5671' : '5672')}`;
}

/** How long a publish waits for its confirm before the connection is taken for stuck (see `publish`). */
export const CONFIRM_TIMEOUT_MS = 10_000;

/** The broker answered, but refused the topology or a consumer: retrying will not help soon. */
export class SetupError extends Error {
	override name = 'SetupError';
}

/** The broker refused a message (a nack): e.g. its queue is full (`overflow: reject-publish`). It did not take it (routed to several queues: not into all of them). */
export class PublishNackedError extends Error {
	override name = 'PublishNackedError';
}

export class BrokerUnavailableError extends Error {
	override name = 'BrokerUnavailableError';
}

/**
 * What a TLS handshake failure means for the operator, by Node's error code: the broker's certificate
 * is not trusted (or names another host, or expired), or the broker refused ours (missing, expired,
 * from a CA it does not trust). Undefined for anything else. Retrying cannot fix these.
 */
export function tlsProblem(error: unknown): string | undefined {
	const code = (error as {code?: unknown} | undefined)?.code;
	if (typeof code !== 'string') {
		return undefined;
	}

	switch (code) {
		case 'SELF_SIGNED_CERT_IN_CHAIN':
		case 'DEPTH_ZERO_SELF_SIGNED_CERT':
		case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
		case 'UNABLE_TO_GET_ISSUER_CERT':
		case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY': {
			return 'the broker\'s TLS certificate is not signed by a CA this client trusts (give its CA with --ca)';
		}

		case 'CERT_HAS_EXPIRED': {
			return 'the broker\'s TLS certificate has expired';
		}

		case 'CERT_NOT_YET_VALID': {
			return 'the broker\'s TLS certificate is not valid yet (check the clocks)';
		}

		case 'ERR_TLS_CERT_ALTNAME_INVALID': {
			return 'the broker\'s TLS certificate does not name the host of the URL';
		}

		case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
		case 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE': {
			return 'the broker wants a client certificate (give --cert and --key)';
		}

		case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED': {
			return 'the broker refused the client certificate: it has expired (--cert)';
		}

		case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
		case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
		case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN': {
			return 'the broker refused the client certificate: not signed by a CA it trusts, or not for a client (--cert)';
		}

		default: {
			return code.startsWith('ERR_SSL_') ? `TLS handshake failed (${code})` : undefined;
		}
	}
}

/** The URL with an AMQP heartbeat of `seconds`, unless it sets one already. */
export function withHeartbeat(url: string, seconds: number): string {
	const parsed = new URL(url);
	if (!parsed.searchParams.has('heartbeat')) {
		parsed.searchParams.set('heartbeat', String(seconds));
	}

	return parsed.toString();
}

export declare interface BrokerConnection {
	on(event: 'state', listener: (state: ConnectionState) => void): this;
	on(event: 'error', listener: (error: Error) => void): this;
	/** The live connection closed (the broker's reason, e.g. a 541 with `code`), before any reconnect. */
	on(event: 'drop', listener: (error: Error) => void): this;
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
	/** The broker URLs, in the order they are tried (shuffled once for agents). */
	readonly #urls: readonly string[];
	/** Which of `#urls` the next (or current) connection uses. */
	#urlIndex = 0;
	/** `host:port` of the broker this connection is on, while connected. */
	#broker: string | undefined;
	readonly #waiters = new Set<(isConnected: boolean) => void>();
	readonly #options: ConnectOptions;

	private constructor(options: ConnectOptions) {
		super();
		// One listener per console session besides the client's own: many sessions are not a leak.
		this.setMaxListeners(0);
		this.#options = options;
		const urls = brokerUrls(options.url);
		this.#urls = options.urlOrder === 'shuffle' ? shuffled(urls) : urls;
		// A listener must exist: an unhandled 'error' event would kill the process.
		this.on('error', () => {});
	}

	get state(): ConnectionState {
		return this.#state;
	}

	get isConnected(): boolean {
		return this.#state.status === 'connected';
	}

	/** `host:port` of the broker node this connection is on now; undefined while not connected. */
	get broker(): string | undefined {
		return this.#broker;
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

	/**
	 * Publishes and waits for the broker's confirm. One that does not come within
	 * CONFIRM_TIMEOUT_MS fails, and the connection starts over (a reconnecting one on the next node):
	 * on a cluster, a message to a quorum queue whose leader hung just then waits on that leader
	 * (RabbitMQ 3.10 sent it there) until the node resumes, however soon another was elected. A new
	 * channel finds the new leader; the publisher sends again (a start, with its token).
	 */
	async publish(exchange: string, routingKey: string, content: Uint8Array, options: Options.Publish = {}): Promise<void> {
		const channel = this.channel();
		const model = this.#model;
		await new Promise<void>((resolve, reject) => {
			let isSettled = false;
			const timer = setTimeout(() => {
				isSettled = true;
				reject(new Error(`broker did not confirm the message to ${exchange || 'the default exchange'}/${routingKey} within ${CONFIRM_TIMEOUT_MS / 1000} s`));
				if (this.#channel === channel && !this.#closing) {
					void model?.close().catch(() => {});
				}
			}, CONFIRM_TIMEOUT_MS);
			channel.publish(exchange, routingKey, Buffer.from(content), options, error => {
				if (isSettled) {
					return;
				}

				isSettled = true;
				clearTimeout(timer);
				if (error) {
					// amqplib's words for a basic.nack; anything else is the channel gone with the message.
					const isNack = (error as Error).message === 'message nacked';
					const what = `broker did not confirm the message to ${exchange || 'the default exchange'}/${routingKey}`;
					reject(isNack ? new PublishNackedError(`${what}: refused (its queue is full)`, {cause: error}) : new Error(what, {cause: error}));
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
		// The first connection tries each URL of the list once before it gives up or backs off.
		const failures: string[] = [];
		let isTlsOnly = true;
		for (let tried = 0; tried < this.#urls.length; tried++) {
			try {
				await this.connectOnce();
				return;
			} catch (error) {
				if (error instanceof SetupError && this.#options.firstConnect === 'fail-on-setup-error') {
					throw error;
				}

				failures.push(this.#urls.length > 1 ? `${redactUrl(this.#urls[this.#urlIndex]!)}: ${describe(error)}` : describe(error));
				isTlsOnly &&= tlsProblem(error) !== undefined;
				if (tried === this.#urls.length - 1) {
					// Certificates are configuration: an agent retrying them forever would only hide the mistake.
					if (!this.#options.reconnect || this.#options.firstConnect === 'fail' || (isTlsOnly && this.#options.firstConnect === 'fail-on-setup-error')) {
						throw new BrokerUnavailableError(`cannot reach the broker at ${redactUrl(this.#options.url)}: ${failures.join('; ')}`, {cause: error});
					}

					this.nextUrl();
					this.scheduleRetry(error);
					return;
				}

				this.nextUrl();
			}
		}
	}

	/** Moves on to the next URL of the list (wrapping round). */
	private nextUrl(): void {
		this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
	}

	private async connectOnce(): Promise<void> {
		const current = this.#urls[this.#urlIndex]!;
		const url = withHeartbeat(current, this.#options.heartbeatSeconds ?? 5);
		const model = await amqp.connect(url, socketOptions({...this.#options, url: current}));
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
			this.#broker = brokerAddress(current);
			this.#attempt = 0;
			this.setState({status: 'connected', since: Date.now(), broker: this.#broker});
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
		this.#broker = undefined;
		this.emit('drop', error);
		if (this.#options.reconnect) {
			// The node may be gone: the next attempt goes to the next one of the list.
			this.nextUrl();
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
		const delay = retryDelayMs(this.#attempt, this.#urls.length) * (0.8 + Math.random() * 0.4);
		this.setState({status: 'disconnected', error: describe(error), retryAt: Date.now() + delay});
		this.#retryTimer = setTimeout(() => {
			this.setState({status: 'connecting'});
			this.connectOnce().catch((nextError: unknown) => {
				this.nextUrl();
				this.scheduleRetry(nextError);
			});
		}, delay);
	}
}

/**
 * The pause before reconnect attempt `attempt` (1 = the first after a drop) over `urlCount` URLs:
 * 100 ms for each URL of the first round, doubling with each round that failed all of them, ≤ 5 s.
 */
export function retryDelayMs(attempt: number, urlCount: number): number {
	const round = Math.floor((attempt - 1) / Math.max(urlCount, 1));
	return Math.min(100 * 2 ** round, 5000);
}

/** A copy of `items` in random order (Fisher–Yates). */
function shuffled<T>(items: readonly T[]): T[] {
	const copy = [...items];
	for (let index = copy.length - 1; index > 0; index--) {
		const other = Math.floor(Math.random() * (index + 1));
		[copy[index], copy[other]] = [copy[other]!, copy[index]!];
	}

	return copy;
}

function describe(error: unknown): string {
	const tls = tlsProblem(error);
	if (tls !== undefined) {
		// OpenSSL's own text is long and cryptic; keep its gist after the plain words.
		const detail = (error as Error).message.replace(/^[\dA-F]+:error:[\dA-F]+:SSL routines:[^:]*:/, '').replace(/:\.\.\/deps\/openssl.*$/s, '');
		return `${tls}: ${detail}`;
	}

	if (error instanceof Error) {
		// amqplib drops the broker's reason from a close during the handshake (after the login).
		if (/^Expected ConnectionOpenOk; got <ConnectionClose/.test(error.message)) {
			return 'the broker refused to open the connection after the login: this user has reached its connection limit, or may not use this vhost';
		}

		const code = (error as {code?: unknown}).code;
		return error.message || (typeof code === 'string' ? code : error.name);
	}

	return String(error);
}
