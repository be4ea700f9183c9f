/**
 * Enforces quotas on one host: one decision at a time per tenant, against the tenant's usage on
 * the other hosts plus its VMs and starts under way here; a start let through stays reserved until
 * it ends (by then its VM is in the host's records, or gone).
 */
import {addUsage, limitsFor, quotaProblem, type QuotaConfig, type Usage} from './quota.js';

type Ask = {readonly memoryMb: number; readonly cpus: number};

export type QuotaSources = {
	/** The tenant's usage on the other hosts (a list round). */
	fleet(owner: string): Promise<Usage>;
	/** The tenant's usage here, its starts under way left out (they are reserved here). */
	local(owner: string): Usage;
};

export type QuotaRefusal = {readonly ok: false; readonly code: 'quota_exceeded'; readonly reason: string};

export class QuotaGuard {
	readonly #config: QuotaConfig | undefined;
	readonly #sources: QuotaSources;
	readonly #reservations = new Set<{readonly owner: string; readonly usage: Usage}>();
	readonly #locks = new Map<string, Promise<unknown>>();

	constructor(config: QuotaConfig | undefined, sources: QuotaSources) {
		this.#config = config;
		this.#sources = sources;
	}

	/** Runs `start` if one more VM of `ask` keeps `owner` within its quota; else the refusal naming the limit. */
	async admit<T>(owner: string | null, ask: Ask, start: () => Promise<T>): Promise<T | QuotaRefusal> {
		const limits = limitsFor(this.#config, owner);
		if (!limits || owner === null) {
			return start();
		}

		// Over the quota on this host alone (its VMs and starts under way): the other hosts can only
		// add to that, so the refusal needs no list round. A tenant's flood of starts is refused at
		// the speed of the start queue, not one fleet round each, so it holds up others' starts less.
		const hereAlone = quotaProblem(owner, limits, addUsage(this.#sources.local(owner), this.reserved(owner)), ask);
		if (hereAlone) {
			return refusal(hereAlone);
		}

		const previous = this.#locks.get(owner) ?? Promise.resolve();
		const decided = previous.then(async () => {
			const usage = addUsage(addUsage(await this.#sources.fleet(owner), this.#sources.local(owner)), this.reserved(owner));
			const problem = quotaProblem(owner, limits, usage, ask);
			if (problem) {
				return {attempt: Promise.resolve(refusal(problem))};
			}

			// Reserved before the lock is released: the next decision for this owner counts it.
			const reservation = {owner, usage: {vms: 1, ...ask}};
			this.#reservations.add(reservation);
			return {attempt: start().finally(() => this.#reservations.delete(reservation))};
		});
		const settled = decided.then(
			() => undefined,
			() => undefined,
		);
		this.#locks.set(owner, settled);
		void settled.then(() => {
			if (this.#locks.get(owner) === settled) {
				this.#locks.delete(owner);
			}
		});
		return (await decided).attempt;
	}

	private reserved(owner: string): Usage {
		let usage: Usage = {vms: 0, cpus: 0, memoryMb: 0};
		for (const reservation of this.#reservations) {
			if (reservation.owner === owner) {
				usage = addUsage(usage, reservation.usage);
			}
		}

		return usage;
	}
}

function refusal(problem: string): QuotaRefusal {
	return {ok: false, code: 'quota_exceeded', reason: `quota_exceeded: ${problem}`};
}
