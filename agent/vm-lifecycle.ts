/**
 * The VM lifecycle carried out: requests (stop, kill, boot, reboot, delete) and what VMs do (their
 * process ends, a restart's backoff elapses) go through `transition` (lifecycle.ts, pure), and
 * the actions it returns are done here: spawn QEMU, press the power button, SIGKILL, reset, make
 * and remove TAPs, schedule restarts, remove files, publish events. One operation at a time per
 * VM (`ManagedVm.serialize`); a VM's process end arrives on its one exit signal (`VmProcess`).
 * The Agent routes requests here and hands it what it owns (capacity, events, the gone memory).
 */
import {stat, writeFile} from 'node:fs/promises';
import type {Logger} from 'pino';
import type {Vm} from '../source/protocol/index.js';
import type {HostNetwork} from './host-network.js';
import {classifyExit, transition, type LifeEvent, type RestartRules, type Transition} from './lifecycle.js';
import {readLogTail} from './log-files.js';
import {qemuArgs, type NicSpec} from './qemu-args.js';
import {qemuNetns} from './qemu-netns.js';
import {qmpExecute, waitForQmp} from './qmp.js';
import type {GoneRecord, VmRecord} from './record.js';
import type {ProcessRef, Runtime} from './runtime.js';
import type {StateStore} from './store.js';
import type {VmPaths} from './vm-paths.js';
import {ManagedVm, VmProcess, VmTable, type ObservedExit} from './vm-table.js';

/** A failed VM request, as the agent answers it. */
export type VmFailure = {
	readonly ok: false;
	readonly code: 'unknown_image' | 'unknown_vm' | 'no_capacity' | 'quota_exceeded' | 'start_failed' | 'stop_failed' | 'invalid_state' | 'bad_request' | 'forbidden';
	readonly reason: string;
};

/** What a VM operation answers. */
export type VmOutcome = {readonly ok: true; readonly value: Vm} | VmFailure;

/** The agent's settings the lifecycle needs (`AgentConfig` has them all). */
export type LifecycleConfig = {
	readonly hostId: string;
	readonly accel: 'kvm' | 'tcg';
	readonly graceSeconds: number;
	readonly startPaused?: boolean;
	readonly runAs?: string;
	readonly qmpTimeoutMs?: number;
	readonly steadyMs?: number;
	readonly recoveryParallelism?: number;
};

/** What the lifecycle gets from the agent. */
export type LifecycleDeps = {
	readonly config: LifecycleConfig;
	readonly runtime: Runtime;
	readonly store: StateStore;
	readonly network: HostNetwork;
	readonly log: Logger;
	readonly rules: RestartRules;
	readonly table: VmTable<VmOutcome>;
	toVm(vm: ManagedVm<VmOutcome>): Vm;
	publish(type: 'vm.started' | 'vm.stopped' | 'vm.crashed' | 'vm.rebooted' | 'vm.deleted', vm: Vm): void;
	/** Why one more VM of this size does not fit (undefined: it does), not counting VM `excluding`. */
	capacityProblem(ask: {readonly memoryMb: number; readonly cpus: number}, options: {readonly excluding?: string}): string | undefined;
	/** After each operation: capacity may have changed. */
	onSettled(): void;
	/** A deleted VM remembered, and remembering one. */
	gone(vmId: string): GoneRecord | undefined;
	remember(record: VmRecord, vm: Vm): Promise<void>;
	/** A QEMU process was just spawned for VM `vmId`: its serial port (`paths.consoleSocket`) is there to hold. */
	onSpawned?(vmId: string, paths: VmPaths): void;
};

/** What a request's effects need besides the VM: the grace period of a stop or delete. */
type Effects = {readonly graceSeconds?: number};

const POWERDOWN_RETRY_MS = 2000;
const DEFAULT_STEADY_MS = 60_000;
const DEFAULT_RECOVERY_PARALLELISM = 4;
/** How recent a (re)start makes a repeated reboot request already done. */
const REPEATED_REBOOT_WINDOW_MS = 120_000;

export class VmLifecycle {
	readonly config: LifecycleConfig;
	readonly store: StateStore;
	readonly #deps: LifecycleDeps;
	readonly #vms: VmTable<VmOutcome>;
	readonly #runtime: Runtime;
	readonly #network: HostNetwork;
	readonly #log: Logger;
	readonly #rules: RestartRules;

	constructor(deps: LifecycleDeps) {
		this.#deps = deps;
		this.config = deps.config;
		this.store = deps.store;
		this.#vms = deps.table;
		this.#runtime = deps.runtime;
		this.#network = deps.network;
		this.#log = deps.log;
		this.#rules = deps.rules;
	}

	/** Runs a VM again after QMP answered its first start: `running`, announced. */
	async confirmStarted(vm: ManagedVm<VmOutcome>): Promise<VmOutcome> {
		const ready = transition(vm.life, {type: 'ready'}, this.#rules);
		return ready.ok ? this.carryOut(vm, ready, {}) : {ok: true, value: this.toVm(vm)};
	}

	/** Manages a VM process found running at start-up (not our child: its end is seen by `pollAdopted`). */
	adopt(vm: ManagedVm<VmOutcome>, ref: ProcessRef): void {
		const adopted = new VmProcess(ref, {});
		vm.process = adopted;
		void adopted.exited.then(async exit => this.onExit(vm, adopted, exit));
	}

	/** Feeds the exit signal of adopted VMs whose process is gone (a child's comes from its own exit event). */
	pollAdopted(): void {
		for (const vm of this.#vms.values()) {
			if (vm.process?.isAdopted && !this.#runtime.isAlive(vm.process.ref)) {
				vm.process.observeGone();
			}
		}
	}

	/** Stops every restart timer (the agent is shutting down; a VM in its backoff is booted by the next agent). */
	cancelTimers(): void {
		for (const vm of this.#vms.values()) {
			clearTimeout(vm.restartTimer);
		}
	}

	private toVm(vm: ManagedVm<VmOutcome>): Vm {
		return this.#deps.toVm(vm);
	}

	private publishVm(type: Parameters<LifecycleDeps['publish']>[0], vm: Vm): void {
		this.#deps.publish(type, vm);
	}

	private updateCapacity(): void {
		this.#deps.onSettled();
	}

	private capacityProblem(ask: {readonly memoryMb: number; readonly cpus: number}, options: {readonly excluding?: string}): string | undefined {
		return this.#deps.capacityProblem(ask, options);
	}

	private async remember(record: VmRecord, vm: Vm): Promise<void> {
		await this.#deps.remember(record, vm);
	}

	/**
	 * Spawns the VM's QEMU on its disk and seed (its TAP made first, unless `isAttached`) and waits
	 * for QMP. On failure nothing of the attempt is left running.
	 */
	async spawn(vm: ManagedVm<VmOutcome>, options: {readonly isAttached?: boolean; readonly isIncoming?: boolean} = {}): Promise<{readonly ok: true} | {readonly ok: false; readonly reason: string}> {
		const {record} = vm;
		const {id, network} = record;
		const paths = this.store.paths(id);
		const log = this.#log.child({vm: id});
		let process_: VmProcess | undefined;
		try {
			if (!options.isAttached && (network === 'private' || network === 'public') && record.mac !== null) {
				await this.#network.attach(id, network, {mac: record.mac, owner: record.owner});
			}

			const nic: NicSpec | undefined =
				record.mac === null ? undefined : network === 'user' ? {kind: 'user', mac: record.mac} : {kind: 'tap', ifname: id, mac: record.mac};
			// An incoming guest stays paused when its RAM has arrived, until the migration is committed
			// (`cont`): a destination whose agent is gone never runs a second copy beside the source's.
			const args = qemuArgs({id, paths, memoryMb: record.memoryMb, cpus: record.cpus, accel: this.config.accel, ...(nic ? {nic} : {}), isPaused: options.isIncoming === true || (this.config.startPaused ?? false), isIncoming: options.isIncoming ?? false, hasSeed: true, ...(this.config.runAs === undefined ? {} : {runAs: this.config.runAs})});
			const {netns} = this.#network.config;
			// A user-mode guest's connections are QEMU's own: they leave from an empty namespace (qemu-netns.ts).
			const where = qemuNetns(network, {...(netns === undefined ? {} : {netns}), canUnshare: process.getuid?.() === 0});
			const logOffset = await stat(paths.qemuLog).then(
				info => info.size,
				() => 0,
			);
			// The console log is the agent's (it holds the serial socket): there from the first boot, private.
			await writeFile(paths.console, '', {flag: 'a', mode: 0o600});
			const child = this.#runtime.spawnQemu(args, {logPath: paths.qemuLog, ...where});
			this.#deps.onSpawned?.(id, paths);
			const spawned = new VmProcess({pid: child.pid, ...(child.startTime === undefined ? {} : {startTime: child.startTime})}, {child: child.exited, logOffset});
			process_ = spawned;
			vm.process = spawned;
			void spawned.exited.then(async exit => this.onExit(vm, spawned, exit));
			await waitForQmp(paths.qmp, {timeoutMs: this.config.qmpTimeoutMs ?? 20_000, isAlive: () => this.#runtime.isAlive(spawned.ref)});
			vm.record = {...vm.record, startedAt: Date.now()};
			spawned.decideBoot(true);
			log.info({image: record.image, pid: child.pid, startTime: child.startTime, memoryMb: record.memoryMb, cpus: record.cpus, network, mac: record.mac}, 'VM started');
			return {ok: true};
		} catch (error) {
			const qemuLog = (await this.store.tail(paths.qemuLog, 2000)).trim().split('\n').at(-1) ?? '';
			log.warn({err: error, qemuLog}, 'VM boot failed');
			if (process_ !== undefined) {
				if (vm.process === process_) {
					vm.process = undefined;
				}

				this.#runtime.signal(process_.ref, 'SIGKILL');
				await this.waitForExit(process_.ref, 5000);
				process_.decideBoot(false);
			}

			if (!options.isAttached) {
				await this.#network.detach(record);
			}

			return {ok: false, reason: qemuLog ? `${(error as Error).message}: ${qemuLog}` : (error as Error).message};
		}
	}

	/** Forgets a VM that never ran (or whose record is unreadable): its network attachment, its record and its state dir. */
	async discard(id: string, record: VmRecord | undefined = this.#vms.get(id)?.record): Promise<void> {
		const vm = this.#vms.get(id);
		if (vm) {
			clearTimeout(vm.restartTimer);
		}

		if (record) {
			await this.#network.detach(record);
		}

		this.#vms.delete(id);
		await this.store.remove(id);
	}


	/**
	 * Stops a VM: the ACPI power button, SIGKILL after `graceSeconds` (at once with `isKill`). It
	 * keeps its disk and stays listed as `stopped`, desired `stopped`, until booted or deleted.
	 */
	async stop(vmId: string, options: {readonly isKill: boolean; readonly graceSeconds: number}): Promise<VmOutcome> {
		const vm = this.#vms.get(vmId);
		if (!vm) {
			return this.goneAnswer(vmId, 'stop');
		}

		// A kill during a graceful stop cuts its grace short.
		if (options.isKill && vm.life.phase === 'stopping' && vm.process) {
			this.#runtime.signal(vm.process.ref, 'SIGKILL');
		}

		const event: LifeEvent = {type: options.isKill ? 'kill' : 'stop'};
		return this.operate(vm, event.type, async () => this.request(vm, event, {graceSeconds: options.graceSeconds}));
	}

	/** Boots a stopped or crashed VM again on this host: same id, MAC, disk and seed; it counts against capacity like a start. */
	async boot(vmId: string): Promise<VmOutcome> {
		const vm = this.#vms.get(vmId);
		if (!vm) {
			return this.goneAnswer(vmId, 'boot');
		}

		return this.operate(vm, 'boot', async () => {
			if (vm.life.phase === 'stopped' || vm.life.phase === 'crashed') {
				const full = this.capacityProblem(vm.record, {excluding: vm.id});
				if (full) {
					return {ok: false, code: 'no_capacity', reason: full};
				}
			}

			return this.request(vm, {type: 'boot'});
		});
	}

	/**
	 * Reboots a running VM. Hard: QMP `system_reset`, the same process. Soft: the ACPI power button
	 * (the guest shuts down cleanly; SIGKILL after the grace period), then the same VM is booted
	 * again at once in a new process, like libvirt's and OpenStack's soft reboot of a guest without
	 * an agent (ACPI has no "reboot" button).
	 */
	async reboot(vmId: string, options: {readonly isHard: boolean; readonly isRepeat?: boolean}): Promise<VmOutcome> {
		const vm = this.#vms.get(vmId);
		if (!vm) {
			return this.goneAnswer(vmId, 'reboot');
		}

		// A reboot seen again (resent after a lost connection, or redelivered) must not reboot twice:
		// while the first is under way it joins it (`operate`), and a VM (re)started since within the
		// requester's patience answers as it is.
		const kind = options.isHard ? 'reboot-hard' : 'reboot';
		if (options.isRepeat && vm.pending?.kind !== kind && vm.life.phase === 'running' && vm.record.startedAt !== null && Date.now() - vm.record.startedAt < REPEATED_REBOOT_WINDOW_MS) {
			return {ok: true, value: this.toVm(vm)};
		}

		return this.operate(vm, kind, async () => {
			const outcome = await this.request(vm, {type: 'reboot', isHard: options.isHard}, {graceSeconds: this.config.graceSeconds});
			if (outcome.ok && !options.isHard && vm.life.phase === 'running') {
				this.publishVm('vm.rebooted', outcome.value);
			}

			return outcome;
		});
	}

	/** Deletes a VM: stops it if needed (`graceSeconds` for a graceful power-off, 0: killed), then removes its disk, seed, TAP, lease and record. */
	async delete(vmId: string, options: {readonly graceSeconds: number}): Promise<VmOutcome> {
		const vm = this.#vms.get(vmId);
		if (!vm) {
			return this.goneAnswer(vmId, 'delete');
		}

		return this.operate(vm, 'delete', async () => this.request(vm, {type: 'delete'}, {graceSeconds: options.graceSeconds}));
	}

	/**
	 * Boots again, `recoveryParallelism` at a time, every VM the start-up found meant to run
	 * without its process (the host rebooted or lost power); each is announced as it comes up.
	 */
	async recoverAll(ids: readonly string[]): Promise<void> {
		if (ids.length === 0) {
			return;
		}

		const started = Date.now();
		this.#log.info({vms: ids.length}, 'booting again the VMs that were running');
		let next = 0;
		let failures = 0;
		const worker = async (): Promise<void> => {
			while (next < ids.length) {
				const vm = this.#vms.get(ids[next++]!);
				if (!vm) {
					continue;
				}

				// eslint-disable-next-line no-await-in-loop
				const outcome = await this.operate(vm, 'boot', async () => this.request(vm, {type: 'recover'}));
				if (outcome.ok) {
					this.#log.info({vm: vm.id, state: outcome.value.state, ms: Date.now() - started}, 'VM booted again after the agent started');
				} else {
					failures++;
					this.#log.warn({vm: vm.id, reason: outcome.reason}, 'VM not booted again after the agent started');
				}
			}
		};

		const parallelism = Math.max(1, this.config.recoveryParallelism ?? DEFAULT_RECOVERY_PARALLELISM);
		await Promise.all(Array.from({length: Math.min(parallelism, ids.length)}, worker));
		this.#log.info({vms: ids.length, failures, ms: Date.now() - started}, 'recovery done');
	}

	/** A request for a VM not in the table: a deleted one remembered (its last answer), else unknown. */
	private goneAnswer(vmId: string, what: 'stop' | 'boot' | 'reboot' | 'delete'): VmOutcome {
		const gone = this.#deps.gone(vmId);
		if (!gone) {
			return {ok: false, code: 'unknown_vm', reason: `no VM ${vmId} on host ${this.config.hostId}`};
		}

		// Remembered from an agent older than the lifecycle: stopped then meant gone.
		if (gone.vm.state === 'deleted' && what !== 'delete') {
			return {ok: false, code: 'invalid_state', reason: `cannot ${what} VM ${vmId} on host ${this.config.hostId}: it is deleted`};
		}

		return {ok: true, value: gone.vm};
	}

	/** Runs one operation on a VM after those under way (a repeat joins the same one), then re-checks capacity. */
	private async operate(vm: ManagedVm<VmOutcome>, kind: string, operation: () => Promise<VmOutcome>): Promise<VmOutcome> {
		return vm.serialize(kind, async () => {
			try {
				return await operation();
			} catch (error) {
				this.#log.error({vm: vm.id, err: error, kind}, 'VM operation failed');
				return {ok: false, code: kind === 'boot' || kind === 'restart' || kind.startsWith('reboot') ? 'start_failed' : 'stop_failed', reason: `${kind} of VM ${vm.id} on host ${this.config.hostId} failed: ${(error as Error).message}`};
			} finally {
				this.updateCapacity();
			}
		});
	}

	private async request(vm: ManagedVm<VmOutcome>, event: LifeEvent, effects: Effects = {}): Promise<VmOutcome> {
		const step = transition(vm.life, event, this.#rules);
		if (!step.ok) {
			return {ok: false, code: 'invalid_state', reason: `cannot ${event.type} VM ${vm.id} on host ${this.config.hostId}: ${step.reason}`};
		}

		return this.carryOut(vm, step, effects);
	}

	/** Takes the new state (written to `vm.json` when it changed) and carries out the actions, in order. */
	async carryOut(vm: ManagedVm<VmOutcome>, step: Extract<Transition, {ok: true}>, effects: Effects): Promise<VmOutcome> {
		if (step.state !== vm.life) {
			vm.life = step.state;
			await this.persist(vm);
		}

		for (const action of step.actions) {
			switch (action.kind) {
				case 'spawn': {
					const spawned = await this.spawn(vm);
					if (!spawned.ok) {
						vm.record = {...vm.record, exit: `boot failed: ${spawned.reason}`};
					}

					const next = transition(vm.life, spawned.ok ? {type: 'ready'} : {type: 'boot-failed'}, this.#rules);
					if (next.ok) {
						await this.carryOut(vm, next, effects);
					}

					if (!spawned.ok) {
						return {ok: false, code: 'start_failed', reason: `could not boot VM ${vm.id} on host ${this.config.hostId}: ${spawned.reason}`};
					}

					break;
				}

				case 'powerdown':
				case 'sigkill': {
					const ended = await this.endProcess(vm, {isKill: action.kind === 'sigkill', graceSeconds: effects.graceSeconds ?? this.config.graceSeconds});
					if (!ended.ok) {
						return ended;
					}

					break;
				}

				case 'reset': {
					await qmpExecute(this.store.paths(vm.id).qmp, 'system_reset', {timeoutMs: 5000});
					vm.record = {...vm.record, startedAt: Date.now()};
					await this.persist(vm);
					this.#log.info({vm: vm.id}, 'VM reset (hard reboot)');
					break;
				}

				case 'schedule-restart': {
					this.scheduleRestart(vm, action.delayMs);
					break;
				}

				case 'cancel-restart': {
					clearTimeout(vm.restartTimer);
					vm.restartTimer = undefined;
					break;
				}

				case 'detach': {
					await this.#network.detach(vm.record);
					break;
				}

				case 'remove': {
					await this.remove(vm);
					const next = transition(vm.life, {type: 'removed'}, this.#rules);
					if (next.ok) {
						await this.carryOut(vm, next, effects);
					}

					break;
				}

				case 'publish': {
					this.publishVm(action.event, this.toVm(vm));
					break;
				}
			}
		}

		return {ok: true, value: this.toVm(vm)};
	}

	async persist(vm: ManagedVm<VmOutcome>): Promise<void> {
		vm.record = vm.toRecord();
		if (vm.life.phase !== 'deleted' && this.#vms.get(vm.id) === vm) {
			await this.store.write(vm.record).catch((error: unknown) => this.#log.warn({vm: vm.id, err: error}, 'could not write the VM record'));
		}
	}

	/**
	 * Ends the VM's process (power button with grace, or SIGKILL) and waits until its end has been
	 * acted on (the exit signal's transition carried out). Without a process, its end is fed at once.
	 */
	private async endProcess(vm: ManagedVm<VmOutcome>, options: {readonly isKill: boolean; readonly graceSeconds: number}): Promise<VmOutcome | {readonly ok: true}> {
		const running = vm.process;
		if (running === undefined || !this.#runtime.isAlive(running.ref)) {
			if (running) {
				running.observeGone();
				await running.handled;
			} else {
				const next = transition(vm.life, {type: 'exited', exit: 'unknown', ranSteadily: false}, this.#rules);
				if (next.ok) {
					await this.carryOut(vm, next, {});
				}
			}

			vm.record = {...vm.record, exit: vm.record.exit ?? 'was not running'};
			return {ok: true};
		}

		let how: string;
		if (options.isKill) {
			this.#runtime.signal(running.ref, 'SIGKILL');
			how = 'killed';
		} else {
			how = await this.powerdown(running.ref, this.store.paths(vm.id).qmp, options.graceSeconds);
		}

		if (!(await this.waitForExit(running.ref, 5000))) {
			return {ok: false, code: 'stop_failed', reason: `VM ${vm.id} (pid ${running.ref.pid}) did not exit after SIGKILL`};
		}

		// An adopted VM's end is otherwise seen at the next poll.
		running.observeGone();
		await running.handled;
		vm.record = {...vm.record, exit: how};
		await this.persist(vm);
		this.#log.info({vm: vm.id, how}, 'VM process ended on request');
		return {ok: true};
	}

	/** The one place a VM's process end is acted on: fed by the child's exit event, or by the poller for adopted VMs. */
	async onExit(vm: ManagedVm<VmOutcome>, process_: VmProcess, exit: ObservedExit): Promise<void> {
		try {
			// An exit before QMP answered is the boot's to handle (it failed).
			if (!(await process_.bootDecided) || vm.process !== process_ || this.#vms.get(vm.id) !== vm) {
				return;
			}

			const paths = this.store.paths(vm.id);
			const log = await readLogTail(paths.qemuLog, 4096)
				.then(tail => tail.data.toString('utf8'))
				.catch(() => '');
			const since = await stat(paths.qemuLog).then(
				info => log.slice(Math.max(0, log.length - (info.size - process_.logOffset))),
				() => '',
			);
			if (vm.process !== process_ || this.#vms.get(vm.id) !== vm) {
				return;
			}

			// From here to the new phase (carryOut sets it before its first await) nothing yields: a list
			// never sees the VM as running without its process.
			vm.process = undefined;
			const {kind, description} = classifyExit(exit, since);
			const ranSteadily = vm.record.startedAt !== null && Date.now() - vm.record.startedAt >= (this.config.steadyMs ?? DEFAULT_STEADY_MS);
			const wasRunning = vm.life.phase === 'running';
			vm.record = {...vm.record, exit: description};
			const step = transition(vm.life, {type: 'exited', exit: kind, ranSteadily}, this.#rules);
			if (!step.ok) {
				return;
			}

			if (wasRunning) {
				this.#log.warn({vm: vm.id, exit: description, policy: vm.life.policy, next: step.state.phase, restarts: step.state.restarts}, 'VM ended on its own');
			}

			await this.carryOut(vm, step, {});
		} catch (error) {
			this.#log.error({vm: vm.id, err: error}, 'could not act on a VM process end');
		} finally {
			process_.markHandled();
		}
	}

	private scheduleRestart(vm: ManagedVm<VmOutcome>, delayMs: number): void {
		clearTimeout(vm.restartTimer);
		this.#log.info({vm: vm.id, delayMs, restarts: vm.life.restarts}, 'VM restart scheduled');
		vm.restartTimer = setTimeout(() => {
			vm.restartTimer = undefined;
			void this.operate(vm, 'restart', async () => this.request(vm, {type: 'backoff-elapsed'})).then(outcome => {
				if (!outcome.ok) {
					this.#log.warn({vm: vm.id, reason: outcome.reason}, 'VM restart failed');
				}
			});
		}, delayMs);
		vm.restartTimer.unref();
	}

	/** Removes everything of a VM (its process is gone): TAP, guard, lease, disk, seed, record; remembers it as deleted. */
	private async remove(vm: ManagedVm<VmOutcome>): Promise<void> {
		clearTimeout(vm.restartTimer);
		await this.#network.detach(vm.record);
		this.#vms.delete(vm.id);
		await this.store.remove(vm.id);
		await this.remember(vm.record, {...this.toVm(vm), state: 'deleted', pid: null, ip: null, uptimeSeconds: null});
		this.#log.info({vm: vm.id}, 'VM deleted');
	}

	/** ACPI power button, repeated (a press before the guest listens is lost), then SIGKILL at the deadline. */
	private async powerdown(pid: ProcessRef, qmpPath: string, graceSeconds: number): Promise<string> {
		const deadline = Date.now() + graceSeconds * 1000;
		let nextPress = 0;
		while (Date.now() < deadline) {
			if (Date.now() >= nextPress) {
				nextPress = Date.now() + POWERDOWN_RETRY_MS;
				await qmpExecute(qmpPath, 'system_powerdown', {timeoutMs: 1000}).catch(() => {});
			}

			if (await this.waitForExit(pid, Math.min(100, Math.max(1, deadline - Date.now())))) {
				return 'powered off';
			}
		}

		if (!this.#runtime.isAlive(pid)) {
			return 'powered off';
		}

		this.#runtime.signal(pid, 'SIGKILL');
		return graceSeconds > 0 ? `killed after ${graceSeconds} s grace` : 'killed';
	}

	async waitForExit(pid: ProcessRef, timeoutMs: number): Promise<boolean> {
		const deadline = Date.now() + timeoutMs;
		while (this.#runtime.isAlive(pid)) {
			if (Date.now() >= deadline) {
				return false;
			}

			await new Promise(resolve => setTimeout(resolve, 10));
		}

		return true;
	}
}
