/**
 * A VM's lifecycle as a pure transition: `transition(state, event) → {state, actions}`. The agent
 * feeds it requests (boot, stop, kill, reboot, delete), what its VMs do (QMP answered, process
 * ended, a boot failed) and its timers (a restart's backoff elapsed), and carries out the actions it
 * returns (spawn QEMU, press the power button, SIGKILL, reset, schedule a restart, remove files,
 * publish an event). Nothing here does I/O or reads the clock.
 *
 * Phases (what the agent knows; `toVmState` maps them to the protocol's states):
 * ```
 *             start                ready
 *   (none) ─────────▶ creating ──────────▶ running ◀──────────────┐
 *                        │ failed            │  │ reboot --hard     │ ready
 *                        ▼                   │  └─(system_reset)    │
 *                     (removed)    stop/kill │  reboot (soft)       │
 *                                            ▼        ▼             │
 *        boot ┌──────────────────────── stopping   rebooting ──exit──▶ booting
 *   ┌─────────┴──┐        exit               │                      ▲   │ failed
 *   │  stopped   │◀──────────────────────────┘                      │   ▼
 *   └────────────┘◀── guest powered off (on-failure) ── running     │  crashed
 *                                                          │ exit   │
 *                                                          ▼        │ backoff elapsed
 *                           crash loop / policy `no` ◀── backoff ───┘
 *                                   crashed ── boot ──▶ booting
 *   any of stopped, crashed, backoff, running ── delete ──▶ deleting ──▶ deleted (record removed)
 * ```
 */
import type {DesiredState, RestartPolicy, VmState} from '../source/protocol/index.js';

export type Phase = 'creating' | 'booting' | 'running' | 'rebooting' | 'stopping' | 'stopped' | 'backoff' | 'crashed' | 'deleting' | 'deleted';

export type LifeState = {
	readonly phase: Phase;
	readonly desired: DesiredState;
	readonly policy: RestartPolicy;
	/** Restarts the policy made since the VM last ran steadily. */
	readonly restarts: number;
};

/**
 * How a VM's process ended: `poweroff` (QEMU exited 0 after the guest powered itself off), `killed`
 * (SIGKILL: someone, or the kernel's OOM killer, ended it), `crashed` (any other signal or a
 * non-zero exit), `unknown` (an adopted VM: not our child, so its status cannot be read).
 */
export type ExitKind = 'poweroff' | 'killed' | 'crashed' | 'unknown';

export type LifeEvent =
	| {readonly type: 'boot'}
	| {readonly type: 'stop'}
	| {readonly type: 'kill'}
	| {readonly type: 'reboot'; readonly isHard: boolean}
	| {readonly type: 'delete'}
	/** QMP answered: the process the last `spawn` made runs. */
	| {readonly type: 'ready'}
	/** The last `spawn` failed (QEMU exited or never answered QMP). */
	| {readonly type: 'boot-failed'}
	/** The VM's process ended. `ranSteadily`: it had run long enough that its earlier restarts no longer count. */
	| {readonly type: 'exited'; readonly exit: ExitKind; readonly ranSteadily: boolean}
	| {readonly type: 'backoff-elapsed'}
	/** At agent start-up: the VM is meant to run and its process is gone (power loss, host reboot). */
	| {readonly type: 'recover'}
	/** Everything of a deleted VM is gone. */
	| {readonly type: 'removed'};

export type LifeAction =
	/** Make the TAP (where the network needs one) and spawn QEMU on the VM's disk and seed. */
	| {readonly kind: 'spawn'}
	/** The ACPI power button, repeated, then SIGKILL once the grace period is over. */
	| {readonly kind: 'powerdown'}
	| {readonly kind: 'sigkill'}
	/** QMP `system_reset`: the same process, a hardware reset of the guest. */
	| {readonly kind: 'reset'}
	| {readonly kind: 'schedule-restart'; readonly delayMs: number}
	| {readonly kind: 'cancel-restart'}
	/** The process is gone: its TAP, guard and lease go too (the VM keeps its disk). */
	| {readonly kind: 'detach'}
	/** Disk, seed, TAP, lease and record. */
	| {readonly kind: 'remove'}
	| {readonly kind: 'publish'; readonly event: 'vm.started' | 'vm.stopped' | 'vm.crashed' | 'vm.rebooted' | 'vm.deleted'};

export type Transition =
	| {readonly ok: true; readonly state: LifeState; readonly actions: readonly LifeAction[]}
	/** The request does not fit the VM's phase now: `reason` says what does. */
	| {readonly ok: false; readonly reason: string};

/** Restart backoff and crash-loop limit. */
export type RestartRules = {
	/** The first restart's delay; each next one doubles it, up to `maxDelayMs`. */
	readonly baseDelayMs: number;
	readonly maxDelayMs: number;
	/** Restarts in a row (without the VM running steadily in between) before the agent gives up. */
	readonly limit: number;
};

export const DEFAULT_RESTART_RULES: RestartRules = {baseDelayMs: 1000, maxDelayMs: 30_000, limit: 5};

/** The delay before restart number `attempt` (0 = the first). */
export function backoffMs(attempt: number, rules: RestartRules): number {
	return Math.min(rules.maxDelayMs, rules.baseDelayMs * 2 ** Math.min(attempt, 30));
}

function same(state: LifeState, actions: readonly LifeAction[] = []): Transition {
	return {ok: true, state, actions};
}

function to(state: LifeState, changes: Partial<LifeState>, actions: readonly LifeAction[]): Transition {
	return {ok: true, state: {...state, ...changes}, actions};
}

/** The next state and what to do, for `event` in `state`; with `rules` for restarts. */
export function transition(state: LifeState, event: LifeEvent, rules: RestartRules = DEFAULT_RESTART_RULES): Transition {
	const {phase} = state;
	if (phase === 'deleted') {
		return event.type === 'delete' ? same(state) : {ok: false, reason: 'it is deleted'};
	}

	switch (event.type) {
		case 'boot': {
			if (phase === 'stopped' || phase === 'crashed') {
				return to(state, {phase: 'booting', desired: 'running', restarts: 0}, [{kind: 'spawn'}]);
			}

			if (phase === 'backoff') {
				return to(state, {phase: 'booting', desired: 'running'}, [{kind: 'cancel-restart'}, {kind: 'spawn'}]);
			}

			if (phase === 'deleting') {
				return {ok: false, reason: 'it is being deleted'};
			}

			// creating, booting, running, rebooting: it runs or is on its way.
			return phase === 'stopping' ? {ok: false, reason: 'it is stopping: boot it again once it is stopped'} : same(state);
		}

		case 'stop':
		case 'kill': {
			if (phase === 'running' || phase === 'rebooting' || phase === 'booting' || phase === 'creating') {
				return to(state, {phase: 'stopping', desired: 'stopped'}, [{kind: event.type === 'kill' ? 'sigkill' : 'powerdown'}]);
			}

			if (phase === 'stopping') {
				return same(state, event.type === 'kill' ? [{kind: 'sigkill'}] : []);
			}

			if (phase === 'backoff') {
				return to(state, {phase: 'stopped', desired: 'stopped', restarts: 0}, [{kind: 'cancel-restart'}, {kind: 'publish', event: 'vm.stopped'}]);
			}

			if (phase === 'crashed') {
				return to(state, {phase: 'stopped', desired: 'stopped', restarts: 0}, [{kind: 'publish', event: 'vm.stopped'}]);
			}

			// stopped: as it is; deleting: on its way to more than stopped.
			return phase === 'deleting' ? {ok: false, reason: 'it is being deleted'} : same(state);
		}

		case 'reboot': {
			if (phase === 'running') {
				return event.isHard
					? same(state, [{kind: 'reset'}, {kind: 'publish', event: 'vm.rebooted'}])
					: to(state, {phase: 'rebooting'}, [{kind: 'powerdown'}]);
			}

			if (phase === 'rebooting' || phase === 'booting' || phase === 'creating') {
				return same(state);
			}

			if (phase === 'stopped' || phase === 'crashed') {
				return {ok: false, reason: `it is ${phase}: boot it (vm.boot) instead`};
			}

			if (phase === 'backoff') {
				return {ok: false, reason: 'it is waiting to be restarted after a crash: boot it (vm.boot) to restart it now'};
			}

			return {ok: false, reason: phase === 'stopping' ? 'it is stopping: boot it once it is stopped' : 'it is being deleted'};
		}

		case 'delete': {
			if (phase === 'deleting') {
				return same(state);
			}

			const stopFirst: LifeAction[] = phase === 'stopped' || phase === 'crashed' ? [] : phase === 'backoff' ? [{kind: 'cancel-restart'}] : [{kind: 'powerdown'}];
			return to(state, {phase: 'deleting', desired: 'stopped'}, [...stopFirst, {kind: 'remove'}]);
		}

		case 'ready': {
			if (phase !== 'creating' && phase !== 'booting') {
				return same(state);
			}

			return to(state, {phase: 'running'}, [{kind: 'publish', event: 'vm.started'}]);
		}

		case 'boot-failed': {
			if (phase === 'creating') {
				return to(state, {phase: 'crashed'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]);
			}

			// A QEMU that dies before QMP answers is a crash like any other: its policy decides,
			// and it counts towards the crash-loop limit.
			return phase === 'booting' ? exited({...state, phase: 'running'}, 'crashed', false, rules) : same(state);
		}

		case 'exited': {
			return exited(state, event.exit, event.ranSteadily, rules);
		}

		case 'recover': {
			return phase === 'running' || phase === 'booting' ? to(state, {phase: 'booting'}, [{kind: 'spawn'}]) : same(state);
		}

		case 'backoff-elapsed': {
			return phase === 'backoff' ? to(state, {phase: 'booting'}, [{kind: 'spawn'}]) : same(state);
		}

		case 'removed': {
			return phase === 'deleting' ? to(state, {phase: 'deleted'}, [{kind: 'publish', event: 'vm.deleted'}]) : same(state);
		}
	}
}

function exited(state: LifeState, exit: ExitKind, ranSteadily: boolean, rules: RestartRules): Transition {
	switch (state.phase) {
		case 'stopping': {
			return to(state, {phase: 'stopped', restarts: 0}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.stopped'}]);
		}

		case 'rebooting': {
			// The soft reboot's power-off: the same VM comes straight back.
			return to(state, {phase: 'booting'}, [{kind: 'detach'}, {kind: 'spawn'}]);
		}

		case 'running':
		case 'booting':
		case 'creating': {
			break;
		}

		default: {
			// deleting: the delete waits for this exit itself; stopped, crashed, backoff: no process.
			return same(state);
		}
	}

	if (state.policy === 'no') {
		return to(state, {phase: 'crashed'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]);
	}

	if (exit === 'poweroff' && state.policy === 'on-failure') {
		return to(state, {phase: 'stopped', desired: 'stopped', restarts: 0}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.stopped'}]);
	}

	const restarts = ranSteadily ? 0 : state.restarts;
	if (restarts >= rules.limit) {
		return to(state, {phase: 'crashed', restarts}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]);
	}

	return to(state, {phase: 'backoff', restarts: restarts + 1}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: backoffMs(restarts, rules)}, {kind: 'publish', event: 'vm.crashed'}]);
}

/** The protocol's state for a phase. */
export function toVmState(phase: Phase): VmState {
	switch (phase) {
		case 'creating':
		case 'booting':
		case 'backoff':
		case 'rebooting': {
			return 'starting';
		}

		case 'running':
		case 'stopping':
		case 'stopped':
		case 'crashed':
		case 'deleting':
		case 'deleted': {
			return phase;
		}
	}
}

/** What QEMU prints when a signal (SIGTERM, SIGINT, SIGHUP) ends it: it then exits 0 like a guest power-off. */
const TERMINATED_BY_SIGNAL = /terminating on signal/;

/**
 * How a VM's process ended, from its exit status (null: an adopted process, status unknown) and
 * what QEMU wrote to its log since it was spawned. QEMU exits 0 both when the guest powers itself
 * off and when a SIGTERM ends it; only the latter prints "terminating on signal" first.
 */
export function classifyExit(exit: {readonly code: number | null; readonly signal: string | null} | null, logSinceSpawn: string): {readonly kind: ExitKind; readonly description: string} {
	if (exit === null || (exit.code === null && exit.signal === null)) {
		return {kind: 'unknown', description: 'process ended (exit status unknown: adopted VM)'};
	}

	if (exit.signal !== null) {
		return {kind: exit.signal === 'SIGKILL' ? 'killed' : 'crashed', description: `killed by ${exit.signal}`};
	}

	if (exit.code === 0) {
		const line = logSinceSpawn.split('\n').find(text => TERMINATED_BY_SIGNAL.test(text));
		return line === undefined ? {kind: 'poweroff', description: 'guest powered off'} : {kind: 'crashed', description: line.replace(/^.*?(terminating on signal)/, '$1').trim()};
	}

	return {kind: 'crashed', description: `exit code ${exit.code}`};
}
