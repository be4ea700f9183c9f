/**
 * A viewer's side of an interactive console session (the CLI's `console --attach`, the TUI's
 * console view). Output comes through a queue of the viewer's own: server-named, exclusive (only
 * this connection reads it, and it goes when the connection goes) and bounded (1 MiB, oldest
 * dropped first), so a viewer that stops reading costs the broker a bounded queue and the agent
 * nothing. Frames are numbered: a gap is reported as output dropped. Input goes to the VM's host
 * as fire-and-forget `vm.console.input` messages; a keepalive every third of the session's expiry
 * keeps it open and finds out when it has ended. A VM live-migrated away ends the session saying
 * where it went: the stream attaches there again on the same queue and carries on.
 */
import {Buffer} from 'node:buffer';
import type {Channel, ConsumeMessage} from 'amqplib';
import {MAX_CONSOLE_INPUT_BYTES, parseConsoleFrame, type ConsoleAttached, type ConsoleFrame} from '../protocol/index.js';
import type {KloudClient} from './client.js';
import type {ConnectionState} from './connection.js';

/** The output queue's bound: past it the broker drops the oldest frames (the viewer sees a gap). */
export const CONSOLE_QUEUE_BYTES = 1024 * 1024;

/** Input pieces published before the broker has confirmed one (the agent serves 8 per sender at once). */
const INPUT_WINDOW = 8;

/** Output asked for when attaching again on a migrated VM's new host: all it printed since the move, within reason. */
const FOLLOW_TAIL_BYTES = 64 * 1024;

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
			stream = new ConsoleStream(client, channel, attached, {queue, options});
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
	/** The VM's host: a new one after a live migration (the stream attaches there again). */
	host: string;
	session: string;
	/** Resolves with the reason once the session is over, whichever way it ended. */
	readonly ended: Promise<string>;
	readonly #client: KloudClient;
	readonly #channel: Channel;
	readonly #onEvent: (event: ConsoleEvent) => void;
	#tailFrames: number;
	/** The output queue, and how the stream was opened: what attaching again after a migration takes. */
	readonly #queue: string;
	readonly #options: ConsoleStreamOptions;
	/** Attaching on the VM's new host: input and keepalives wait, frames of other sessions are held. */
	#isMoving = false;
	#early: ConsoleFrame[] = [];
	#isWriter: boolean;
	#nextSeq = 0;
	#isOver = false;
	#isDetaching = false;
	#resolveEnded!: (reason: string) => void;
	readonly #keepalive: NodeJS.Timeout;
	#missedKeepalives = 0;
	readonly #offState: () => void;
	/** Input pieces waiting for a place in the window, in order. */
	readonly #queued: Uint8Array[] = [];
	/** Input pieces published and not yet confirmed by the broker. */
	#unconfirmed = 0;
	/** Settles once the input sent so far is confirmed (or failed): detach waits for it. */
	#sending: Promise<void> = Promise.resolve();

	private constructor(client: KloudClient, channel: Channel, attached: ConsoleAttached, opened: {readonly queue: string; readonly options: ConsoleStreamOptions}) {
		this.#client = client;
		this.#channel = channel;
		this.vmId = attached.vmId;
		this.host = attached.host;
		this.session = attached.session;
		this.#isWriter = attached.isWriter;
		this.#tailFrames = attached.tailFrames;
		this.#onEvent = opened.options.onEvent;
		this.#queue = opened.queue;
		this.#options = opened.options;
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
			this.#queued.push(data.subarray(offset, offset + MAX_CONSOLE_INPUT_BYTES));
		}

		this.pumpInput();
	}

	/**
	 * Publishes queued input while fewer than INPUT_WINDOW pieces wait for the broker's confirm: a
	 * keystroke goes at once (it used to wait for the confirm of the key before it), a paste goes a
	 * window at a time, well inside the agent's share per sender (a burst past it would be refused
	 * there, and input has no reply to say so). One channel keeps the order.
	 */
	private pumpInput(): void {
		while (this.#unconfirmed < INPUT_WINDOW && this.#queued.length > 0 && !this.#isOver && !this.#isMoving) {
			const piece = this.#queued.shift()!;
			this.#unconfirmed++;
			const sent = this.#client.consoleInput(this.host, this.session, piece).then(
				() => {
					this.#unconfirmed--;
					this.pumpInput();
				},
				(error: unknown) => {
					this.#unconfirmed--;
					this.end(`input could not be sent: ${(error as Error).message}`, {isDetached: false});
				},
			);
			this.#sending = Promise.all([this.#sending, sent]).then(() => {});
		}
	}

	/** Ends the session at the viewer's wish: the agent is told (best effort), the queue goes. */
	async detach(options: {readonly timeoutMs?: number} = {}): Promise<void> {
		if (this.#isOver) {
			return;
		}

		this.#isDetaching = true;
		// Everything typed before the detach reaches the guest first.
		while ((this.#queued.length > 0 || this.#unconfirmed > 0) && !this.#isOver) {
			await this.#sending;
		}

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
		if (parsed.ok) {
			this.onFrame(parsed.value);
		}
	}

	private onFrame(frame: ConsoleFrame): void {
		if (this.#isOver) {
			return;
		}

		if (frame.session !== this.session) {
			// While attaching on a migrated VM's new host, its first frames may come before the answer.
			if (this.#isMoving) {
				this.#early.push(frame);
			}

			return;
		}

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
				if (frame.movedTo !== undefined && !this.#isDetaching) {
					void this.follow(frame.movedTo, frame.reason);
				} else {
					this.end(frame.reason, {isDetached: this.#isDetaching});
				}

				break;
			}
		}
	}

	/**
	 * The VM was live-migrated to host `to`: attach there again, on the same output queue, in the
	 * same seat (writer or not). What the guest printed since it resumed there (its console log on
	 * the new host starts then) comes first, as new output; input typed meanwhile waits, in order.
	 */
	private async follow(to: string, reason: string): Promise<void> {
		this.#isMoving = true;
		try {
			const attached = await this.#client.consoleAttach(
				this.vmId,
				{output: this.#queue, write: this.#isWriter, tailBytes: FOLLOW_TAIL_BYTES},
				{host: to, timeoutMs: this.#options.timeoutMs},
			);
			if (this.#isOver) {
				return;
			}

			this.host = attached.host;
			this.session = attached.session;
			this.#isWriter = attached.isWriter;
			// Its log there holds only what came after the move: none of it was seen here.
			this.#tailFrames = 0;
			this.#nextSeq = 0;
			this.#missedKeepalives = 0;
			this.#onEvent({type: 'notice', text: `${reason}: attached there`, isWriter: attached.isWriter});
		} catch (error) {
			this.end(`${reason}, and attaching there failed: ${(error as Error).message}`, {isDetached: false});
			return;
		} finally {
			this.#isMoving = false;
		}

		const early = this.#early;
		this.#early = [];
		for (const frame of early) {
			this.onFrame(frame);
		}

		this.pumpInput();
	}

	private async keepalive(timeoutMs: number): Promise<void> {
		if (this.#isMoving) {
			return;
		}

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
