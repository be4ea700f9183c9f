/**
 * The agent's VMs: one `ManagedVm` per VM (its record, its lifecycle state, its process with ONE
 * exit signal, the operation under way, a restart timer), in one table. Everything the agent knows
 * about a VM lives here, so nothing about it can disagree with itself.
 */
import type {VmLoad} from '../source/protocol/index.js';
import type {LifeState, Phase} from './lifecycle.js';
import type {RecordPhase, VmRecord} from './record.js';
import type {ProcessExit, ProcessRef} from './runtime.js';
import type {UsageSample} from './vm-load.js';

/** How a VM process ended, as seen by its exit signal: an adopted VM's status cannot be read (null). */
export type ObservedExit = ProcessExit | null;

/**
 * One QEMU process of a VM. Its end arrives once, on `exited`: from the child's own exit event
 * (a process this agent spawned) or from `observeGone` (an adopted process, found by polling).
 */
export class VmProcess {
	readonly ref: ProcessRef;
	readonly isAdopted: boolean;
	readonly exited: Promise<ObservedExit>;
	/** Where QEMU's log stood when it was spawned: what it writes after is this process's. */
	readonly logOffset: number;
	/** Set once QMP answered (adopted ones always): an exit before that is the boot's to handle. */
	isConfirmed: boolean;
	/** Settles once the agent has acted on this process's end (its transition carried out). */
	readonly handled: Promise<void>;
	/** Settles once its boot is decided: true once QMP answered, false when the boot failed. */
	readonly bootDecided: Promise<boolean>;
	#resolveExit!: (exit: ObservedExit) => void;
	#resolveHandled!: () => void;
	#resolveBoot!: (isConfirmed: boolean) => void;

	constructor(ref: ProcessRef, options: {readonly child?: Promise<ProcessExit>; readonly logOffset?: number}) {
		this.ref = ref;
		this.isAdopted = options.child === undefined;
		this.isConfirmed = this.isAdopted;
		this.logOffset = options.logOffset ?? 0;
		this.exited = new Promise(resolve => {
			this.#resolveExit = resolve;
		});
		this.handled = new Promise(resolve => {
			this.#resolveHandled = resolve;
		});
		this.bootDecided = new Promise(resolve => {
			this.#resolveBoot = resolve;
		});
		if (this.isAdopted) {
			this.#resolveBoot(true);
		}

		void options.child?.then(exit => this.#resolveExit(exit));
	}

	/** An adopted process was seen gone (a child's end comes from its exit event instead). */
	observeGone(): void {
		if (this.isAdopted) {
			this.#resolveExit(null);
		}
	}

	/** QMP answered (true) or the boot failed (false). */
	decideBoot(isConfirmed: boolean): void {
		this.isConfirmed = isConfirmed;
		this.#resolveBoot(isConfirmed);
	}

	markHandled(): void {
		this.#resolveHandled();
	}
}

/** The operation under way on a VM: a repeated request of the same kind joins it. */
export type PendingOperation<T> = {readonly kind: string; readonly promise: Promise<T>};

export class ManagedVm<T = unknown> {
	record: VmRecord;
	life: LifeState;
	process: VmProcess | undefined;
	pending: PendingOperation<T> | undefined;
	restartTimer: NodeJS.Timeout | undefined;
	/** The overlay's allocated bytes, read when a list is taken at most every `DISK_USE_MAX_AGE_MS`, and when (`Date.now()`). */
	diskUsedBytes: number | undefined;
	diskUsedAt: number | undefined;
	/** The last sample of its process's CPU time and RSS, and the load measured up to it (`vm-load.ts`). */
	usage: UsageSample | undefined;
	load: VmLoad | undefined;
	#tail: Promise<unknown> = Promise.resolve();

	constructor(record: VmRecord) {
		this.record = record;
		this.life = {phase: record.phase, desired: record.desired, policy: record.restart, restarts: record.restarts};
	}

	get id(): string {
		return this.record.id;
	}

	/**
	 * Runs `operation` after those already queued on this VM (one at a time per VM); a request of
	 * the kind under way or queued last joins it instead.
	 */
	serialize(kind: string, operation: () => Promise<T>): Promise<T> {
		if (this.pending?.kind === kind) {
			return this.pending.promise;
		}

		const promise = this.#tail.then(operation, operation);
		const entry = {kind, promise};
		this.pending = entry;
		this.#tail = promise.catch(() => {});
		void promise
			.finally(() => {
				if (this.pending === entry) {
					this.pending = undefined;
				}
			})
			.catch(() => {});
		return promise;
	}

	/** The record as it should be written now. */
	toRecord(): VmRecord {
		return {...this.record, phase: recordPhase(this.life.phase), desired: this.life.desired, restart: this.life.policy, restarts: this.life.restarts};
	}
}

/** Backoff and a soft reboot are written as `booting`: a restarted agent boots the VM again. */
export function recordPhase(phase: Phase): RecordPhase {
	switch (phase) {
		case 'backoff':
		case 'rebooting': {
			return 'booting';
		}

		case 'deleted': {
			return 'deleting';
		}

		default: {
			return phase;
		}
	}
}

/** The VMs of one host, by id. */
export class VmTable<T = unknown> {
	readonly #vms = new Map<string, ManagedVm<T>>();

	get(id: string): ManagedVm<T> | undefined {
		return this.#vms.get(id);
	}

	has(id: string): boolean {
		return this.#vms.has(id);
	}

	add(vm: ManagedVm<T>): void {
		this.#vms.set(vm.id, vm);
	}

	delete(id: string): void {
		this.#vms.delete(id);
	}

	get size(): number {
		return this.#vms.size;
	}

	values(): ManagedVm<T>[] {
		return [...this.#vms.values()];
	}
}
