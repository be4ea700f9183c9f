/**
 * Leader election by the broker (README, "The controller"): every candidate consumes the quorum
 * queue `<ns>.controller`, declared with `x-single-active-consumer`, so the broker delivers to one
 * consumer at a time. Each candidate puts a token message in; the active consumer keeps one token
 * unacknowledged (that is the lease) and acknowledges the rest. When its channel or connection
 * dies, the broker hands the held token to the next consumer, which becomes the leader.
 *
 * A hung leader: a whole-process hang stops AMQP heartbeats and the broker closes its connection
 * (≈ 3 × the heartbeat); a leader whose work is stuck while its event loop runs calls `stepDown`
 * (the controller's watchdog), and a leader that stops getting its own tick messages back (its
 * channel silently dead) steps down by itself.
 */
import {EventEmitter} from 'node:events';
import type {Channel, ConsumeMessage} from 'amqplib';
import type {Topology} from '../protocol/index.js';
import type {SetupContext} from './connection.js';

export type LeadershipOptions = {
	readonly topo: Topology;
	/** Who this candidate is (host id), written into its tokens for the logs. */
	readonly candidate: string;
	/** How often the leader sends itself a tick; it steps down when none came back for 3 of these. */
	readonly tickMs: number;
};

export declare interface Leadership {
	on(event: 'elected' | 'deposed', listener: () => void): this;
}

/** One candidate's view: whether it leads now. Fed by `setup` on each (re)connection. */
export class Leadership extends EventEmitter {
	#isLeader = false;
	#channel: Channel | undefined;
	#held: ConsumeMessage | undefined;
	#openChannel: (() => Promise<Channel>) | undefined;
	#lastTickAt = 0;
	#timer: NodeJS.Timeout | undefined;
	#publisher: SetupContext['channel'] | undefined;
	#isConnected = false;
	#isClosed = false;
	readonly #options: LeadershipOptions;

	constructor(options: LeadershipOptions) {
		super();
		this.#options = options;
	}

	get isLeader(): boolean {
		return this.#isLeader;
	}

	/** Joins the election on a fresh connection (run from the connection's `setup`). */
	async setup(context: SetupContext): Promise<void> {
		this.#publisher = context.channel;
		this.#isConnected = true;
		this.lose();
		await context.channel.assertQueue(this.#options.topo.controllerQueue, {
			durable: true,
			arguments: {'x-queue-type': 'quorum', 'x-single-active-consumer': true},
		});
		this.#openChannel = async () => context.openChannel();
		await this.join();
		// Every candidate adds a token: the queue then never lacks one, and extras are acknowledged by the leader.
		await this.publish({kind: 'token', candidate: this.#options.candidate});
		clearInterval(this.#timer);
		this.#timer = setInterval(() => this.tick(), this.#options.tickMs);
		this.#timer.unref();
	}

	/** Gives up the lead (held token back to the queue, for the next candidate), then stands again. */
	async stepDown(): Promise<void> {
		const channel = this.#channel;
		this.lose();
		await channel?.close().catch(() => {});
		// Join again behind the others: the broker makes the next consumer in line active.
		if (!this.#isClosed && this.#isConnected) {
			await this.join().catch(() => {});
		}
	}

	/** The connection went away: whatever we held is the broker's to give to someone else. */
	connectionLost(): void {
		this.#isConnected = false;
		this.lose();
	}

	close(): void {
		this.#isClosed = true;
		clearInterval(this.#timer);
		this.lose();
	}

	private async join(): Promise<void> {
		const channel = await this.#openChannel!();
		channel.on('close', () => {
			if (this.#channel === channel) {
				this.lose();
			}
		});
		await channel.prefetch(50);
		this.#channel = channel;
		await channel.consume(this.#options.topo.controllerQueue, message => this.onMessage(channel, message), {noAck: false});
	}

	private onMessage(channel: Channel, message: ConsumeMessage | null): void {
		if (!message || channel !== this.#channel) {
			return;
		}

		if (!this.#held) {
			this.#held = message;
			this.#isLeader = true;
			this.#lastTickAt = Date.now();
			this.emit('elected');
			return;
		}

		this.#lastTickAt = Date.now();
		channel.ack(message);
	}

	private tick(): void {
		if (!this.#isLeader) {
			return;
		}

		if (Date.now() - this.#lastTickAt > 3 * this.#options.tickMs) {
			void this.stepDown();
			return;
		}

		void this.publish({kind: 'tick', candidate: this.#options.candidate}).catch(() => {});
	}

	private async publish(body: object): Promise<void> {
		const channel = this.#publisher;
		if (!channel || !this.#isConnected) {
			return;
		}

		await new Promise<void>((resolve, reject) => {
			channel.sendToQueue(this.#options.topo.controllerQueue, Buffer.from(JSON.stringify({...body, ts: Date.now()})), {persistent: true}, error => (error ? reject(error as Error) : resolve()));
		});
	}

	private lose(): void {
		this.#held = undefined;
		this.#channel = undefined;
		if (this.#isLeader) {
			this.#isLeader = false;
			this.emit('deposed');
		}
	}
}
