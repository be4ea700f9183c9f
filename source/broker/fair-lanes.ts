/**
 * Per-sender lanes for an agent's host-queue requests: each sender (its validated RabbitMQ user)
 * runs at most `running` requests at once and holds at most `held` (running plus waiting); one
 * over that is refused at once (`busy`), so a tenant's flood costs others nothing but the time to
 * say no to it. Lanes are independent: a request of a sender under its cap starts at once, whatever
 * another sender has queued. Memory stays bounded by the broker's prefetch (messages held unacked).
 */

export type LaneLimits = {
	/** Requests of one sender served at the same time. */
	readonly running: number;
	/** Requests of one sender held (running or waiting): past this, `busy`. */
	readonly held: number;
};

/** Requests of one sender served at once, and held at most (the host queue's prefetch is larger). */
export const DEFAULT_LANE_LIMITS: LaneLimits = {running: 8, held: 48};

type Lane = {running: number; readonly waiting: Array<() => void>};

export class FairLanes {
	readonly #limits: LaneLimits;
	readonly #lanes = new Map<string, Lane>();

	constructor(limits: LaneLimits = DEFAULT_LANE_LIMITS) {
		this.#limits = limits;
	}

	/**
	 * Runs `task` in `sender`'s lane now or once a slot of that lane frees; returns false (and
	 * runs nothing) when the lane already holds `held` requests.
	 */
	submit(sender: string, task: () => Promise<void>): boolean {
		const lane = this.#lanes.get(sender) ?? {running: 0, waiting: []};
		if (lane.running + lane.waiting.length >= this.#limits.held) {
			return false;
		}

		this.#lanes.set(sender, lane);
		const run = () => {
			void task()
				.catch(() => {})
				.finally(() => this.release(sender, lane));
		};

		if (lane.running < this.#limits.running) {
			lane.running++;
			run();
		} else {
			lane.waiting.push(run);
		}

		return true;
	}

	/** How many requests a sender has running and waiting (0 for one never seen). */
	held(sender: string): number {
		const lane = this.#lanes.get(sender);
		return lane ? lane.running + lane.waiting.length : 0;
	}

	private release(sender: string, lane: Lane): void {
		const next = lane.waiting.shift();
		if (next) {
			next();
			return;
		}

		lane.running--;
		if (lane.running === 0) {
			this.#lanes.delete(sender);
		}
	}
}
