/**
 * A bound on bytes in flight (e.g. console data read and not yet sent): `acquire(n)` waits, first
 * come first served, until `n` more bytes fit under the limit. One request larger than the whole
 * limit still runs, alone, so nothing waits forever.
 */
export class ByteBudget {
	readonly limit: number;
	#used = 0;
	readonly #waiting: Array<{readonly bytes: number; readonly grant: () => void}> = [];

	constructor(limit: number) {
		this.limit = limit;
	}

	get used(): number {
		return this.#used;
	}

	/** Resolves with a release function once `bytes` fit; call it exactly once when done. */
	async acquire(bytes: number): Promise<() => void> {
		await new Promise<void>(resolve => {
			this.#waiting.push({bytes, grant: resolve});
			this.grant();
		});
		let isReleased = false;
		return () => {
			if (!isReleased) {
				isReleased = true;
				this.#used -= bytes;
				this.grant();
			}
		};
	}

	/** Runs `task` holding `bytes` of the budget. */
	async with<T>(bytes: number, task: () => Promise<T>): Promise<T> {
		const release = await this.acquire(bytes);
		try {
			return await task();
		} finally {
			release();
		}
	}

	private grant(): void {
		// In order: a large request at the head is not overtaken for ever by small ones.
		while (this.#waiting.length > 0) {
			const head = this.#waiting[0]!;
			if (this.#used > 0 && this.#used + head.bytes > this.limit) {
				return;
			}

			this.#waiting.shift();
			this.#used += head.bytes;
			head.grant();
		}
	}
}
