/**
 * A viewer's side of an interactive console session (the CLI's `console --attach`, the TUI's
 * console view). Output comes through a queue of the viewer's own: server-named, exclusive (only
 * this connection reads it, and it goes when the connection goes) and bounded (1 MiB, oldest
 * dropped first), so a viewer that stops reading costs the broker a bounded queue and the agent
 * nothing. Frames are numbered: a gap is reported as output dropped. Input goes to the VM's host
 * as fire-and-forget `vm.console.input` messages; a keepalive every third of the session's expiry
 * keeps it open and finds out when it has ended.
 */
import {Buffer} from 'node:buffer';
import type {Channel, ConsumeMessage} from 'amqplib';
import {MAX_CONSOLE_INPUT_BYTES, parseConsoleFrame, type ConsoleAttached} from '../protocol/index.js';
import type {KloudClient} from './client.js';
import type {ConnectionState} from './connection.js';

/** The output queue's bound: past it the broker drops the oldest frames (the viewer sees a gap). */
export const CONSOLE_QUEUE_BYTES = 1024 * 1024;

/** Frames the broker hands over before the viewer has acked some (it acks every one). */
const PREFETCH = 256;

export type ConsoleEvent =
	| {readonly type: 'output'; readonly data: Buffer; readonly isTail: boolean}
	/** Output lost on the way: `frames` the broker dropped from the full queue, or `bytes` the agent could not send. */
	| {readonly type: 'dropped'; readonly frames?: number; readonly bytes?: number}
	| {readonly type: 'notice'; readonly text: string; readonly isWriter: boolean}
	| {readonly type: 'end'; readonly reason: string; readonly isDetached: boolean};

export type ConsoleStreamOptions = {
	/** Take the writer's seat (the last to attach with write takes over). */
	readonly write: boolean;
	/** Recent output to show first (default: the agent's, 4 KiB). */
	readonly tailBytes?: number;
	readonly host?: string;
	readonly timeoutMs: number;
	readonly onEvent: (event: ConsoleEvent) => void;
};

export class ConsoleStream {
	/** Attaches to VM `vmId`'s console: resolves once the session is open (its tail may already be on its way). */
	static async open(client: KloudClient, vmId: string, options: ConsoleStreamOptions): Promise<ConsoleStream> {
		const channel = await client.connection.openChannel();
		let stream: ConsoleStream | undefined;
		const early: ConsumeMessage[] = [];
		try {
			await channel.prefetch(PREFETCH);
			const {queue} = await channel.assertQueue('', {
				exclusive: true,
				autoDelete: true,
				durable: false,
				arguments: {'x-max-length-bytes': CONSOLE_QUEUE_BYTES, 'x-overflow': 'drop-head'},
			});
			await channel.consume(
				queue,
				message => {
					if (!message) {
						stream?.end('the broker cancelled the console queue', {isDetached: false});
					} else if (stream) {
						stream.onMessage(message);
					} else {
						early.push(message);
					}
				},
				{noAck: false, exclusive: true},
			);
			const attached = await client.consoleAttach(
				vmId,
				{output: queue, write: options.write, ...(options.tailBytes === undefined ? {} : {tailBytes: options.tailBytes})},
				{timeoutMs: options.timeoutMs, ...(options.host === undefined ? {} : {host: options.host})},
			);
			stream = new ConsoleStream(client, channel, attached, options.onEvent);
		} catch (error) {
			await channel.close().catch(() => {});
			throw error;
		}

		for (const message of early) {
			stream.onMessage(message);
		}

		return stream;
	}

	readonly vmId: string;
	readonly host: string;
	readonly session: string;
	/** Resolves with the reason once the session is over, whichever way it ended. */
	readonly ended: Promise<string>;
	readonly #client: KloudClient;
	readonly #channel: Channel;
	readonly #onEvent: (event: ConsoleEvent) => void;
	readonly #tailFrames: number;
	#isWriter: boolean;
	#nextSeq = 0;
	#isOver = false;
	#isDetaching = false;
	#resolveEnded!: (reason: string) => void;
	readonly #keepalive: NodeJS.Timeout;
	#missedKeepalives = 0;
	readonly #offState: () => void;
	/** Input sent, in order: each waits for the one before (the broker keeps a channel's order). */
	#sending: Promise<void> = Promise.resolve();

	private constructor(client: KloudClient, channel: Channel, attached: ConsoleAttached, onEvent: (event: ConsoleEvent) => void) {
		this.#client = client;
		this.#channel = channel;
		this.vmId = attached.vmId;
		this.host = attached.host;
		this.session = attached.session;
		this.#isWriter = attached.isWriter;
		this.#tailFrames = attached.tailFrames;
		this.#onEvent = onEvent;
		this.ended = new Promise(resolve => {
			this.#resolveEnded = resolve;
		});
		const every = Math.max(250, Math.floor(attached.expiresAfterMs / 3));
		this.#keepalive = setInterval(() => void this.keepalive(every), every);
		this.#offState = client.onConnectionState((state: ConnectionState) => {
			if (state.status !== 'connected') {
				this.end(`lost the connection to the broker${state.status === 'disconnected' ? `: ${state.error}` : ''}`, {isDetached: false});
			}
		});
		channel.on('close', () => this.end('the console channel closed', {isDetached: false}));
	}

	get isWriter(): boolean {
		return this.#isWriter;
	}

	get isOver(): boolean {
		return this.#isOver;
	}

	/** Sends bytes to the guest (split into messages of at most 4 KiB); ignored once the session is over. */
	input(data: Uint8Array): void {
		for (let offset = 0; offset < data.length && !this.#isOver; offset += MAX_CONSOLE_INPUT_BYTES) {
			const piece = data.subarray(offset, offset + MAX_CONSOLE_INPUT_BYTES);
			this.#sending = this.#sending.then(async () =>
				this.#client.consoleInput(this.host, this.session, piece).catch((error: unknown) => {
					this.end(`input could not be sent: ${(error as Error).message}`, {isDetached: false});
				}),
			);
		}
	}

	/** Ends the session at the viewer's wish: the agent is told (best effort), the queue goes. */
	async detach(options: {readonly timeoutMs?: number} = {}): Promise<void> {
		if (this.#isOver) {
			return;
		}

		this.#isDetaching = true;
		await this.#sending;
		await this.#client.consoleDetach(this.host, this.session, {timeoutMs: options.timeoutMs ?? 2000}).catch(() => {});
		this.end('detached', {isDetached: true});
	}

	private onMessage(message: ConsumeMessage): void {
		try {
			this.#channel.ack(message);
		} catch {}

		if (this.#isOver) {
			return;
		}

		const parsed = parseConsoleFrame(message.content);
		if (!parsed.ok || parsed.value.session !== this.session) {
			return;
		}

		const frame = parsed.value;
		if (frame.seq > this.#nextSeq) {
			this.#onEvent({type: 'dropped', frames: frame.seq - this.#nextSeq});
		}

		this.#nextSeq = Math.max(this.#nextSeq, frame.seq + 1);
		switch (frame.type) {
			case 'console.output': {
				if (frame.dropped !== undefined) {
					this.#onEvent({type: 'dropped', bytes: frame.dropped});
				}

				this.#onEvent({type: 'output', data: Buffer.from(frame.data, 'base64'), isTail: frame.seq < this.#tailFrames});
				break;
			}

			case 'console.notice': {
				this.#isWriter = frame.isWriter;
				this.#onEvent({type: 'notice', text: frame.text, isWriter: frame.isWriter});
				break;
			}

			case 'console.end': {
				this.end(frame.reason, {isDetached: this.#isDetaching});
				break;
			}
		}
	}

	private async keepalive(timeoutMs: number): Promise<void> {
		try {
			const alive = await this.#client.consoleKeepalive(this.host, this.session, {timeoutMs});
			this.#missedKeepalives = 0;
			this.#isWriter = alive.isWriter;
		} catch (error) {
			if (this.#isOver) {
				return;
			}

			const {code} = error as {code?: unknown};
			if (code === 'invalid_state' || code === 'forbidden' || code === 'bad_request') {
				this.end(`the session ended: ${(error as Error).message}`, {isDetached: false});
			} else if (++this.#missedKeepalives >= 2) {
				this.end(`host ${this.host} does not answer: ${(error as Error).message}`, {isDetached: false});
			}
		}
	}

	private end(reason: string, options: {readonly isDetached: boolean}): void {
		if (this.#isOver) {
			return;
		}

		this.#isOver = true;
		clearInterval(this.#keepalive);
		this.#offState();
		void this.#channel.close().catch(() => {});
		this.#onEvent({type: 'end', reason, isDetached: options.isDetached});
		this.#resolveEnded(reason);
	}
}
