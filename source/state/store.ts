/**
 * The fleet store lives outside React: the feed dispatches into it, the UI subscribes once
 * (useSyncExternalStore). A dispatch that changes nothing notifies nobody.
 */
import {fleetReducer, initialFleet, type FleetEvent, type FleetState} from './fleet.js';

export class FleetStore {
	#state: FleetState;
	readonly #listeners = new Set<() => void>();

	constructor(now: number, state: FleetState = initialFleet(now)) {
		this.#state = state;
	}

	getState = (): FleetState => this.#state;

	subscribe = (listener: () => void): (() => void) => {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	};

	dispatch(event: FleetEvent): void {
		const next = fleetReducer(this.#state, event);
		if (next !== this.#state) {
			this.#state = next;
			for (const listener of this.#listeners) {
				listener();
			}
		}
	}
}
