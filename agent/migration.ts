/**
 * Live migration carried out (`migration-plan.ts` decides). The source agent asks the destination
 * agent (over the broker: control only) to prepare an incoming QEMU: the same overlay layout on
 * the same base image, TAP, seed, `-incoming defer`, and an NBD export of the new overlay. The
 * source's QEMU then mirrors its overlay there (`drive-mirror`, sync=top, write-blocking) and,
 * once the mirror is in step, sends its RAM (`migrate`); both streams go straight from QEMU to
 * QEMU over the hosts' migration addresses, never over the broker. On completion both copies are
 * paused (the destination's QEMU runs with `-S`); the source ends the mirror and tells the
 * destination to keep the VM (`vm.migrate.commit`), whose agent resumes it there, then removes its
 * own copy. Only one copy ever runs: a destination whose agent is gone never resumes its copy. Before completion any failure leaves the VM
 * running on the source and the destination removes all it made (`vm.migrate.abort`, or its own
 * timer when the source went silent).
 */
import {readFile, stat, writeFile} from 'node:fs/promises';
import {resolve} from 'node:path';
import {gunzipSync, gzipSync} from 'node:zlib';
import type {Logger} from 'pino';
import type {ErrorCode, HostStatus, MigrationPhase, MigrationResult, MigrationTarget, MigrationVm, Reply, RequestDraft, Vm, VmMigration} from '../source/protocol/index.js';
import {parseReplyValue} from '../source/protocol/index.js';
import {arrivalProblem, departureProblem, pickDestination, randomPort} from './migration-plan.js';
import {nextProgress, percentOf} from './migration-progress.js';
import {qmpExecute, QmpError} from './qmp.js';
import type {VmRecord} from './record.js';
import type {Runtime} from './runtime.js';
import type {StateStore} from './store.js';
import type {HostNetwork} from './host-network.js';
import {ManagedVm, type VmTable} from './vm-table.js';
import type {VmLifecycle, VmOutcome} from './vm-lifecycle.js';
import {BaseMismatchError, type AcquiredBase, type BaseStore} from './base-store.js';
import {backingSha} from './bases.js';

type Failure = {readonly ok: false; readonly code: ErrorCode; readonly reason: string};
type Outcome<T> = {readonly ok: true; readonly value: T} | Failure;

/** The NBD export's name and the mirror job's id (one migration per VM at a time). */
const EXPORT_NAME = 'kloud-disk';
const EXPORT_ID = 'kloud-migrate';
const JOB_ID = 'kloud-migrate';

/** How long the destination keeps a prepared VM the source never commits nor aborts. */
const DEFAULT_INCOMING_TTL_MS = 10 * 60_000;
/** How long the disk mirror may take to get in step, and the RAM to move. */
const MIRROR_READY_MS = 10 * 60_000;
const RAM_MS = 10 * 60_000;
const POLL_MS = 50;
/** The RAM stream's cap unless `--migration-bandwidth` says: QEMU's own default (128 MiB/s) would slow a fast underlay. */
const DEFAULT_BANDWIDTH_MIBPS = 1024;
const PORT_TRIES = 8;

export type MigrationDeps = {
	readonly hostId: string;
	readonly imagesDir: string;
	/** The content-addressed bases: a VM is taken in on the very base content it left. */
	readonly bases: BaseStore;
	/** Where this host's QEMUs listen for incoming disks and RAM (undefined: this host takes none in). */
	readonly migrationAddress: string | undefined;
	readonly runtime: Runtime;
	readonly store: StateStore;
	readonly network: HostNetwork;
	readonly lifecycle: VmLifecycle;
	readonly table: VmTable<VmOutcome>;
	readonly log: Logger;
	readonly incomingTtlMs?: number;
	/** Cap on the RAM stream, in MiB/s (`--migration-bandwidth`; default 1024). */
	readonly bandwidthMiBps?: number;
	isCordoned(): boolean;
	/** The live hosts but this one, from their heartbeats. */
	peers(): HostStatus[];
	imageNames(): Promise<string[]>;
	/** Removes the bases no VM uses any more (after a VM left this host). */
	collectBases(): Promise<unknown>;
	capacityProblem(ask: {readonly memoryMb: number; readonly cpus: number}): string | undefined;
	askHost(hostId: string, draft: RequestDraft, timeoutMs: number): Promise<Reply>;
	toVm(vm: ManagedVm<VmOutcome>): Vm;
	/** Re-reads the VMs' addresses (a VM taken in is answered with the one it keeps). */
	refreshAddresses(): Promise<void>;
	publish(type: 'vm.started', vm: Vm): void;
	/** VM `vmId` runs on host `to` now: its console sessions here end, telling their viewers where to attach again. */
	consoleMoved(vmId: string, to: string): void;
};

/** A VM being taken in; `startedAt` is the source's (the spawn here sets its own). */
type Incoming = {readonly vm: ManagedVm<VmOutcome>; readonly from: string; readonly timer: NodeJS.Timeout; readonly startedAt: number | null};

export class Migrations {
	readonly #deps: MigrationDeps;
	readonly #log: Logger;
	/** VMs prepared here for a migration in, by id: not in the VM table until committed. */
	readonly #incoming = new Map<string, Incoming>();
	/** VMs this agent process is migrating out (not cut short by a restart: `settleInterrupted` leaves them be). */
	readonly #outgoing = new Set<string>();
	/** How far each migration out is, as the VM lists show it (`Vm.migration`): set once the destination is picked, gone when it ends. */
	readonly #progress = new Map<string, VmMigration>();

	constructor(deps: MigrationDeps) {
		this.#deps = deps;
		this.#log = deps.log.child({part: 'migration'});
	}

	/** VMs being taken in (they hold memory and vCPUs like a start under way). */
	incomingLoad(): {readonly count: number; readonly memoryMb: number; readonly cpus: number} {
		const vms = [...this.#incoming.values()].map(entry => entry.vm.record);
		return {count: vms.length, memoryMb: vms.reduce((sum, vm) => sum + vm.memoryMb, 0), cpus: vms.reduce((sum, vm) => sum + vm.cpus, 0)};
	}

	isIncoming(vmId: string): boolean {
		return this.#incoming.has(vmId);
	}

	/** VM `vmId`'s migration out of this host while it runs (for its list entry). */
	progressOf(vmId: string): VmMigration | undefined {
		return this.#progress.get(vmId);
	}

	// ---- source ----

	/** Migrates a VM of this host live to `to` (or the host with the most room). */
	async migrate(vmId: string, to: string | undefined): Promise<Outcome<MigrationResult>> {
		const {hostId} = this.#deps;
		const vm = this.#deps.table.get(vmId);
		if (!vm) {
			return {ok: false, code: 'unknown_vm', reason: `no VM ${vmId} on host ${hostId}`};
		}

		let result: Outcome<MigrationResult> | undefined;
		const outcome = await vm.serialize('migrate', async () => {
			this.#outgoing.add(vmId);
			try {
				result = await this.migrateNow(vm, to);
			} finally {
				this.#outgoing.delete(vmId);
				this.#progress.delete(vmId);
			}

			return result.ok ? {ok: true, value: result.value.vm} : {ok: false, code: 'invalid_state', reason: result.reason};
		});
		// A repeat joined the migration under way: it answers with the VM where it went.
		return result ?? (outcome.ok ? {ok: false, code: 'invalid_state', reason: `VM ${vmId} was migrated by an earlier request: it is on host ${outcome.value.host}`} : outcome);
	}

	private async migrateNow(vm: ManagedVm<VmOutcome>, to: string | undefined): Promise<Outcome<MigrationResult>> {
		const started = Date.now();
		const {hostId} = this.#deps;
		const {record} = vm;
		const ask = {id: vm.id, image: record.image, memoryMb: record.memoryMb, phase: vm.life.phase, network: record.network};
		const problem = departureProblem(ask, hostId);
		if (problem) {
			return problem;
		}

		const picked = pickDestination(ask, hostId, this.#deps.peers(), to);
		if (!picked.ok) {
			return picked;
		}

		const destination = picked.host;
		this.#progress.set(vm.id, {to: destination, phase: 'disk', percent: 0, startedAt: started});
		const report = (phase: MigrationPhase, percent: number) => {
			const held = this.#progress.get(vm.id);
			if (held) {
				this.#progress.set(vm.id, nextProgress(held, phase, percent));
			}
		};

		const paths = this.#deps.store.paths(vm.id);
		const log = this.#log.child({vm: vm.id, to: destination});
		const disk = await this.#deps.runtime.imageInfo(paths.disk);
		const diskBytes = disk.virtualBytes;
		// The base's content goes by name: the destination takes the VM in on the same or refuses.
		const baseSha256 = backingSha(disk.backingFile);
		const seed = gzipSync(await readFile(paths.seed)).toString('base64');
		const ip = this.#deps.network.reservedAddress(vm.id);
		const lease = ip === undefined ? undefined : await this.#deps.network.leaseOf(record).catch(() => undefined);
		const moving: MigrationVm = {
			id: vm.id,
			image: record.image,
			memoryMb: record.memoryMb,
			cpus: record.cpus,
			createdAt: record.createdAt,
			startedAt: record.startedAt,
			clientToken: record.clientToken,
			owner: record.owner,
			network: record.network,
			mac: record.mac,
			restart: vm.life.policy,
			diskBytes,
			...(baseSha256 === undefined ? {} : {baseSha256}),
			...(ip === undefined ? {} : {ip}),
			// The guest's lease goes along: the destination lists the VM with its address at once.
			...(lease?.ip === ip && lease !== undefined ? {lease: {expires: lease.expires, ...(lease.clientId === undefined ? {} : {clientId: lease.clientId})}} : {}),
		};
		log.info({memoryMb: record.memoryMb, diskBytes}, 'migration: asking the destination to prepare');
		const prepared = await this.call(destination, {type: 'vm.migrate.prepare', body: {from: hostId, vm: moving, seed}}, 120_000, 'vm.migrate.prepare');
		if (!prepared.ok) {
			return {ok: false, code: prepared.code, reason: `cannot migrate VM ${vm.id} to host ${destination}: ${prepared.reason}`};
		}

		const target = prepared.value;
		let phase: 'mirror' | 'ram' | 'done' = 'mirror';
		let figures: {totalMs: number; downtimeMs: number};
		try {
			const device = await diskDevice(paths.qmp, paths.disk);
			await qmpExecute(paths.qmp, 'drive-mirror', {
				arguments: {
					'job-id': JOB_ID,
					device,
					target: `nbd:${target.address}:${target.nbdPort}:exportname=${target.exportName}`,
					format: 'raw',
					// The destination's overlay is on the same base: only what the overlay holds moves.
					sync: 'top',
					mode: 'existing',
					// Guest writes reach both disks before they complete: nothing is left behind at the switch.
					'copy-mode': 'write-blocking',
				},
			});
			await waitForMirror(paths.qmp, MIRROR_READY_MS, percent => report('disk', percent));
			log.info({ms: Date.now() - started}, 'migration: disk in step, moving RAM');
			phase = 'ram';
			report('ram', 0);
			// Set every time: QEMU keeps the parameter from an earlier migration (of an older agent's).
			await qmpExecute(paths.qmp, 'migrate-set-parameters', {arguments: {'max-bandwidth': Math.round((this.#deps.bandwidthMiBps ?? DEFAULT_BANDWIDTH_MIBPS) * 1024 * 1024)}});

			await qmpExecute(paths.qmp, 'migrate', {arguments: {uri: `tcp:${target.address}:${target.migrationPort}`}});
			figures = await waitForRam(paths.qmp, RAM_MS, percent => report('ram', percent));
			phase = 'done';
			// Both copies paused: from here until the copy here is gone, the destination may list the VM too.
			report('switching', 100);
		} catch (error) {
			const reason = (error as Error).message;
			log.warn({err: error, phase}, 'migration failed: the VM stays here');
			await this.rollBack(paths.qmp, phase);
			const aborted = await this.call(destination, {type: 'vm.migrate.abort', body: {vmId: vm.id, from: hostId}}, 30_000, 'vm.migrate.abort');
			if (!aborted.ok) {
				log.warn({reason: aborted.reason}, 'migration: the destination did not confirm its clean-up (its own timer removes what it prepared)');
			}

			return {ok: false, code: 'migrate_failed', reason: `migration of VM ${vm.id} to host ${destination} failed (${phase === 'mirror' ? 'copying its disk' : 'moving its RAM'}): ${reason}; it keeps running on host ${hostId}`};
		}

		// The RAM is there, both copies paused. End the mirror without switching to its target.
		const ramDoneAt = Date.now();
		await qmpExecute(paths.qmp, 'block-job-cancel', {arguments: {device: JOB_ID}}).catch((error: unknown) => log.debug({err: error}, 'mirror already ended'));
		const committed = await this.call(destination, {type: 'vm.migrate.commit', body: {vmId: vm.id, from: hostId}}, 60_000, 'vm.migrate.commit');
		const arrived = committed.ok ? committed.value : await this.takenInAfterAll(destination, vm.id);
		const commitMs = Date.now() - ramDoneAt;
		if (!arrived) {
			const why = committed.ok ? 'no answer' : committed.reason;
			await qmpExecute(paths.qmp, 'cont').catch((error: unknown) => log.error({err: error}, 'migration: could not resume the VM here'));
			log.error({reason: why}, 'migration: the destination did not take the VM; it runs on here');
			return {ok: false, code: 'migrate_failed', reason: `host ${destination} did not take VM ${vm.id} in (${why}): it keeps running on host ${hostId}`};
		}

		await this.removeHere(vm, destination);
		void this.#deps.collectBases();
		// commitMs: from the RAM's arrival to the destination's answer (its guest resumed), beyond QEMU's downtime.
		log.info({ms: Date.now() - started, ...figures, commitMs}, 'migration done');

		return {ok: true, value: {vm: arrived, from: hostId, totalMs: Date.now() - started, ramMs: figures.totalMs, downtimeMs: figures.downtimeMs}};
	}

	/**
	 * A commit that failed, with both copies paused: the destination drops its own, or says it took
	 * the VM in (the commit's answer was lost), and then answers the commit again. Undefined: the copy
	 * here is the one to run on (a destination whose agent is gone never resumes its copy, and
	 * removes it when its agent comes back).
	 */
	private async takenInAfterAll(destination: string, vmId: string): Promise<Vm | undefined> {
		const body = {vmId, from: this.#deps.hostId};
		const aborted = await this.call(destination, {type: 'vm.migrate.abort', body}, 10_000, 'vm.migrate.abort');
		if (aborted.ok || aborted.code !== 'invalid_state') {
			return undefined;
		}

		const again = await this.call(destination, {type: 'vm.migrate.commit', body}, 10_000, 'vm.migrate.commit');
		return again.ok ? again.value : undefined;
	}

	/** Cancels what was started (RAM, mirror) and makes sure the guest runs on here. */
	private async rollBack(qmp: string, phase: 'mirror' | 'ram' | 'done'): Promise<void> {
		if (phase === 'ram') {
			await qmpExecute(qmp, 'migrate_cancel').catch(() => {});
		}

		await qmpExecute(qmp, 'block-job-cancel', {arguments: {device: JOB_ID, force: true}}).catch(() => {});
		const deadline = Date.now() + 10_000;
		while (Date.now() < deadline) {
			const jobs = (await qmpExecute(qmp, 'query-block-jobs').catch(() => [])) as Array<{device?: string}>;
			if (!jobs.some(job => job.device === JOB_ID)) {
				break;
			}

			await sleep(POLL_MS);
		}

		const status = (await qmpExecute(qmp, 'query-status').catch(() => undefined)) as {status?: string} | undefined;
		if (status?.status === 'postmigrate' || status?.status === 'paused' || status?.status === 'finish-migrate') {
			await qmpExecute(qmp, 'cont').catch(() => {});
		}
	}

	/**
	 * The VM left (for host `movedTo`, when known): its QEMU (paused, its state gone) ends and its
	 * files and TAP go, without events or restarts; its console viewers are sent on.
	 */
	private async removeHere(vm: ManagedVm<VmOutcome>, movedTo?: string): Promise<void> {
		const {table, runtime, lifecycle, network, store} = this.#deps;
		const running = vm.process;
		// Out of the table first: its process's end is then nobody's to act on (no restart, no crash).
		table.delete(vm.id);
		if (movedTo !== undefined) {
			this.#deps.consoleMoved(vm.id, movedTo);
		}

		clearTimeout(vm.restartTimer);
		vm.process = undefined;
		if (running) {
			await qmpExecute(store.paths(vm.id).qmp, 'quit', {timeoutMs: 2000}).catch(() => {});
			if (!(await lifecycle.waitForExit(running.ref, 3000))) {
				runtime.signal(running.ref, 'SIGKILL');
				await lifecycle.waitForExit(running.ref, 5000);
			}
		}

		await network.detach(vm.record);
		await store.remove(vm.id);
	}

	private async call<T extends 'vm.migrate.prepare' | 'vm.migrate.commit' | 'vm.migrate.abort'>(host: string, draft: RequestDraft, timeoutMs: number, type: T): Promise<Outcome<ReturnType<typeof parseValue<T>>>> {
		let reply: Reply;
		try {
			reply = await this.#deps.askHost(host, draft, timeoutMs);
		} catch (error) {
			const name = (error as Error).name;
			const reason = name === 'NoRouteError' ? `host ${host} is not connected to the broker` : name === 'RequestTimeoutError' ? `host ${host} did not answer ${type} within ${timeoutMs / 1000} s` : (error as Error).message;
			return {ok: false, code: 'migrate_failed', reason};
		}

		if (!reply.ok) {
			return {ok: false, code: reply.code, reason: reply.reason};
		}

		try {
			return {ok: true, value: parseValue(type, reply.value)};
		} catch (error) {
			return {ok: false, code: 'migrate_failed', reason: `host ${host} answered ${type} with ${(error as Error).message}`};
		}
	}

	/**
	 * After this agent restarted: a VM whose QEMU was still migrating out (the agent died mid-way)
	 * is settled. Taken in by another host already (it lists the VM): this copy goes. Otherwise the
	 * migration is cancelled, the guest resumed here, and every live peer is told to abort its
	 * incoming copy.
	 */
	async settleInterrupted(): Promise<void> {
		for (const vm of this.#deps.table.values()) {
			if (!vm.process || vm.life.phase !== 'running') {
				continue;
			}

			const {qmp} = this.#deps.store.paths(vm.id);
			const jobs = (await qmpExecute(qmp, 'query-block-jobs').catch(() => [])) as Array<{device?: string}>;
			const info = (await qmpExecute(qmp, 'query-migrate').catch(() => ({}))) as {status?: string};
			const isMirroring = jobs.some(job => job.device === JOB_ID);
			const status = info.status ?? 'none';
			// A migration this agent started since it came up is under way, not cut short.
			if (this.#outgoing.has(vm.id) || (!isMirroring && !['setup', 'active', 'device', 'pre-switchover', 'completed'].includes(status))) {
				continue;
			}

			if (status === 'completed' && (await this.listedElsewhere(vm.id))) {
				this.#log.warn({vm: vm.id}, 'migration: found a VM another host took in while this agent was down: removing the copy here');
				// eslint-disable-next-line no-await-in-loop
				await vm.serialize('migrate', async () => {
					await this.removeHere(vm);
					return {ok: true, value: this.#deps.toVm(vm)};
				});
				continue;
			}

			this.#log.warn({vm: vm.id, status, isMirroring}, 'migration: cancelling a migration cut short by an agent restart; the VM runs on here');
			await this.rollBack(qmp, status === 'completed' ? 'done' : 'ram');
			await qmpExecute(qmp, 'migrate_cancel').catch(() => {});
			await Promise.all(this.#deps.peers().map(async peer => this.call(peer.id, {type: 'vm.migrate.abort', body: {vmId: vm.id, from: this.#deps.hostId}}, 10_000, 'vm.migrate.abort')));
		}

		this.#log.info('migration: checked for migrations out cut short by a restart');
	}

	/** Whether a live peer lists VM `vmId` as its own. */
	private async listedElsewhere(vmId: string): Promise<boolean> {
		const answers = await Promise.all(
			this.#deps.peers().map(async peer => {
				const reply = await this.#deps.askHost(peer.id, {type: 'vm.list', body: {vmId}}, 5000).catch(() => undefined);
				const value = reply?.ok ? parseReplyValue('vm.list', reply.value) : undefined;
				return value?.ok === true && value.value.vms.some(vm => vm.id === vmId);
			}),
		);
		return answers.some(Boolean);
	}

	// ---- destination ----

	/** Prepares an incoming QEMU for a VM: overlay on the same base, seed, TAP, NBD export, migration listener. */
	async prepare(from: string, moving: MigrationVm, seedBase64: string): Promise<Outcome<MigrationTarget>> {
		const {hostId, store, migrationAddress} = this.#deps;
		const basePath = resolve(this.#deps.imagesDir, `${moving.image}.qcow2`);
		const hasImage = (await stat(basePath).catch(() => undefined))?.isFile() ?? false;
		const problem = arrivalProblem({
			hostId,
			vmId: moving.id,
			image: moving.image,
			isCordoned: this.#deps.isCordoned(),
			migrationAddress,
			hasVm: this.#deps.table.has(moving.id) || this.#incoming.has(moving.id) || (await store.exists(moving.id)),
			hasImage,
			imageNames: hasImage ? [] : await this.#deps.imageNames(),
			capacityProblem: this.#deps.capacityProblem(moving),
		});
		if (problem || migrationAddress === undefined) {
			return problem ?? {ok: false, code: 'bad_request', reason: 'no migration address'};
		}

		const record: VmRecord = {
			id: moving.id,
			image: moving.image,
			memoryMb: moving.memoryMb,
			cpus: moving.cpus,
			createdAt: moving.createdAt,
			phase: 'creating',
			startedAt: moving.startedAt,
			clientToken: moving.clientToken,
			owner: moving.owner,
			exit: null,
			network: moving.network,
			mac: moving.mac,
			desired: 'running',
			restart: moving.restart,
			restarts: 0,
			diskBytes: moving.diskBytes,
		};
		const vm = new ManagedVm<VmOutcome>(record);
		const log = this.#log.child({vm: vm.id, from});
		// Held before the first await that makes something: a second prepare of the same VM is refused.
		const timer = setTimeout(() => void this.expire(vm.id), this.#deps.incomingTtlMs ?? DEFAULT_INCOMING_TTL_MS);
		timer.unref();
		this.#incoming.set(vm.id, {vm, from, timer, startedAt: moving.startedAt});
		let base: AcquiredBase;
		try {
			base = await this.#deps.bases.acquire(moving.image, moving.id, moving.baseSha256 === undefined ? {} : {sha256: moving.baseSha256});
		} catch (error) {
			log.warn({err: error}, 'migration: no base to take the VM in on');
			await this.discardIncoming(vm.id);
			return error instanceof BaseMismatchError
				? {ok: false, code: 'unknown_image', reason: error.message}
				: {ok: false, code: 'migrate_failed', reason: `host ${hostId} could not prepare VM ${vm.id}: ${(error as Error).message}`};
		}

		try {
			const paths = await store.create(record).finally(() => base.release());
			await this.#deps.runtime.createOverlay(base.path, paths.disk, {sizeBytes: moving.diskBytes});
			await writeFile(paths.seed, gunzipSync(Buffer.from(seedBase64, 'base64'), {maxOutputLength: 64 * 1024 * 1024}), {mode: 0o600});
			if ((moving.network === 'private' || moving.network === 'public') && moving.mac !== null) {
				await this.#deps.network.attach(vm.id, moving.network, {mac: moving.mac, owner: moving.owner, ...(moving.ip === undefined ? {} : {ip: moving.ip}), ...(moving.lease === undefined ? {} : {lease: moving.lease})});
			}

			const spawned = await this.#deps.lifecycle.spawn(vm, {isIncoming: true, isAttached: true});
			if (!spawned.ok) {
				throw new Error(`its incoming QEMU did not start: ${spawned.reason}`);
			}

			const node = await diskNode(paths.qmp, paths.disk);
			const nbdPort = await onFreePort(async port =>
				qmpExecute(paths.qmp, 'nbd-server-start', {arguments: {addr: {type: 'inet', data: {host: migrationAddress, port: String(port)}}}}),
			);
			await qmpExecute(paths.qmp, 'block-export-add', {arguments: {type: 'nbd', id: EXPORT_ID, 'node-name': node, name: EXPORT_NAME, writable: true}});
			const migrationPort = await onFreePort(async port => qmpExecute(paths.qmp, 'migrate-incoming', {arguments: {uri: `tcp:${migrationAddress}:${port}`}}));
			log.info({nbdPort, migrationPort, address: migrationAddress}, 'migration: ready to take the VM in');
			return {ok: true, value: {host: hostId, address: migrationAddress, nbdPort, exportName: EXPORT_NAME, migrationPort}};
		} catch (error) {
			log.warn({err: error}, 'migration: could not prepare');
			await this.discardIncoming(vm.id);
			return {ok: false, code: 'migrate_failed', reason: `host ${hostId} could not prepare VM ${vm.id}: ${(error as Error).message}`};
		}
	}

	/** The RAM arrived and the guest runs here: the VM is this host's now. */
	async commit(vmId: string, from: string): Promise<Outcome<Vm>> {
		const entry = this.#incoming.get(vmId);
		if (!entry) {
			const known = this.#deps.table.get(vmId);
			return known ? {ok: true, value: this.#deps.toVm(known)} : {ok: false, code: 'unknown_vm', reason: `no migration of VM ${vmId} under way on host ${this.#deps.hostId}`};
		}

		if (entry.from !== from) {
			return {ok: false, code: 'forbidden', reason: `VM ${vmId} is migrating from host ${entry.from}, not ${from}`};
		}

		const {vm} = entry;
		const {qmp} = this.#deps.store.paths(vmId);
		const deadline = Date.now() + 15_000;
		for (;;) {
			const status = (await qmpExecute(qmp, 'query-migrate').catch(() => ({}))) as {status?: string};
			if (status.status === 'completed') {
				break;
			}

			if (Date.now() > deadline || status.status === 'failed' || !vm.process || !this.#deps.runtime.isAlive(vm.process.ref)) {
				await this.discardIncoming(vmId);
				return {ok: false, code: 'migrate_failed', reason: `the incoming migration of VM ${vmId} on host ${this.#deps.hostId} did not complete (${status.status ?? 'QEMU gone'})`};
			}

			await sleep(POLL_MS);
		}

		// The guest arrived paused (`-S`): it runs from here on, the source's copy stays paused.
		try {
			await qmpExecute(qmp, 'cont');
		} catch (error) {
			await this.discardIncoming(vmId);
			return {ok: false, code: 'migrate_failed', reason: `VM ${vmId} arrived on host ${this.#deps.hostId} but did not resume there: ${(error as Error).message}`};
		}

		clearTimeout(entry.timer);
		this.#incoming.delete(vmId);
		await qmpExecute(qmp, 'block-export-del', {arguments: {id: EXPORT_ID}}).catch(() => {});
		await qmpExecute(qmp, 'nbd-server-stop').catch(() => {});
		vm.life = {...vm.life, phase: 'running', desired: 'running'};
		// Uptime goes on: the guest never stopped.
		vm.record = {...vm.record, startedAt: entry.startedAt};
		this.#deps.table.add(vm);
		await this.#deps.lifecycle.persist(vm);
		await this.#deps.refreshAddresses();
		const value = this.#deps.toVm(vm);
		this.#deps.publish('vm.started', value);
		this.#log.info({vm: vmId, from}, 'migration: VM taken in');
		return {ok: true, value};
	}

	/** The source gave up: everything prepared for the VM goes. */
	async abort(vmId: string, from: string): Promise<Outcome<{vmId: string}>> {
		const entry = this.#incoming.get(vmId);
		if (entry && entry.from !== from) {
			return {ok: false, code: 'forbidden', reason: `VM ${vmId} is migrating from host ${entry.from}, not ${from}`};
		}

		if (!entry && this.#deps.table.has(vmId)) {
			// Committed already (the source lost the answer): the VM lives here now, and stays.
			return {ok: false, code: 'invalid_state', reason: `VM ${vmId} was taken in by host ${this.#deps.hostId} already`};
		}

		await this.discardIncoming(vmId);
		return {ok: true, value: {vmId}};
	}

	/**
	 * The source never committed: it resumed its own copy (or its agent died, and the copy it
	 * adopts again runs on), so what was prepared here goes, even a guest that had arrived.
	 */
	private async expire(vmId: string): Promise<void> {
		const entry = this.#incoming.get(vmId);
		if (!entry) {
			return;
		}

		this.#log.warn({vm: vmId, from: entry.from}, 'migration: the source went silent, removing the prepared VM');
		await this.discardIncoming(vmId);
	}

	private async discardIncoming(vmId: string): Promise<void> {
		const entry = this.#incoming.get(vmId);
		if (!entry) {
			return;
		}

		clearTimeout(entry.timer);
		const {vm} = entry;
		const running = vm.process;
		vm.process = undefined;
		if (running) {
			this.#deps.runtime.signal(running.ref, 'SIGKILL');
			await this.#deps.lifecycle.waitForExit(running.ref, 5000);
		}

		await this.#deps.network.detach(vm.record).catch((error: unknown) => this.#log.warn({err: error, vm: vmId}, 'migration: could not remove the prepared TAP'));
		await this.#deps.store.remove(vmId);
		this.#incoming.delete(vmId);
		void this.#deps.collectBases();
	}
}

function parseValue<T extends 'vm.migrate.prepare' | 'vm.migrate.commit' | 'vm.migrate.abort'>(type: T, raw: unknown) {
	const parsed = parseReplyValue(type, raw);
	if (!parsed.ok) {
		throw new Error(parsed.error.reason);
	}

	return parsed.value;
}

async function sleep(ms: number): Promise<void> {
	await new Promise(resolve => setTimeout(resolve, ms));
}

type BlockInfo = {device?: string; inserted?: {file?: string; 'node-name'?: string}};

async function blockOf(qmp: string, diskPath: string): Promise<BlockInfo> {
	const blocks = (await qmpExecute(qmp, 'query-block')) as BlockInfo[];
	const block = blocks.find(entry => entry.inserted?.file === diskPath);
	if (!block) {
		throw new QmpError(`QEMU has no drive on ${diskPath}`);
	}

	return block;
}

/** The guest disk's device name (`virtio0`): what `drive-mirror` takes. */
async function diskDevice(qmp: string, diskPath: string): Promise<string> {
	const device = (await blockOf(qmp, diskPath)).device;
	if (!device) {
		throw new QmpError(`the drive on ${diskPath} has no device name`);
	}

	return device;
}

/** The guest disk's format node (QEMU names it itself): what `block-export-add` takes. */
async function diskNode(qmp: string, diskPath: string): Promise<string> {
	const node = (await blockOf(qmp, diskPath)).inserted?.['node-name'];
	if (!node) {
		throw new QmpError(`the drive on ${diskPath} has no node name`);
	}

	return node;
}

/** Runs `listen` on random ports until one is free; resolves with it. */
async function onFreePort(listen: (port: number) => Promise<unknown>): Promise<number> {
	let lastError: unknown;
	for (let attempt = 0; attempt < PORT_TRIES; attempt++) {
		const port = randomPort();
		try {
			await listen(port);
			return port;
		} catch (error) {
			lastError = error;
			if (!(error instanceof QmpError) || error.errorClass === undefined) {
				throw error;
			}
		}
	}

	throw lastError as Error;
}

/** Polls the mirror job until it is in step, telling `onPercent` how much of the disk it copied. */
async function waitForMirror(qmp: string, timeoutMs: number, onPercent: (percent: number) => void): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const jobs = (await qmpExecute(qmp, 'query-block-jobs')) as Array<{device?: string; ready?: boolean; status?: string; error?: string; offset?: number; len?: number}>;
		const job = jobs.find(entry => entry.device === JOB_ID);
		if (!job) {
			throw new Error('the disk mirror ended before it was in step (the destination\'s NBD export went away?)');
		}

		if (job.error !== undefined) {
			throw new Error(`the disk mirror failed: ${job.error}`);
		}

		if (job.ready) {
			onPercent(100);
			return;
		}

		onPercent(percentOf(job.offset ?? 0, job.len ?? 0));

		if (Date.now() > deadline) {
			throw new Error(`the disk mirror was not in step within ${timeoutMs / 1000} s`);
		}

		await sleep(POLL_MS);
	}
}

/** Polls QEMU's migration until the RAM is there, telling `onPercent` how much of it was sent (dirtied pages sent again can take it back). */
async function waitForRam(qmp: string, timeoutMs: number, onPercent: (percent: number) => void): Promise<{totalMs: number; downtimeMs: number}> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const info = (await qmpExecute(qmp, 'query-migrate')) as {
			status?: string;
			'total-time'?: number;
			downtime?: number;
			'error-desc'?: string;
			ram?: {total?: number; remaining?: number};
		};
		if (info.status === 'completed') {
			return {totalMs: info['total-time'] ?? 0, downtimeMs: info.downtime ?? 0};
		}

		if (info.status === 'failed' || info.status === 'cancelled') {
			throw new Error(`QEMU's migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
		}

		if (info.ram?.total !== undefined && info.ram.remaining !== undefined) {
			onPercent(percentOf(info.ram.total - info.ram.remaining, info.ram.total));
		}

		if (Date.now() > deadline) {
			await qmpExecute(qmp, 'migrate_cancel').catch(() => {});
			throw new Error(`the RAM did not move within ${timeoutMs / 1000} s`);
		}

		await sleep(POLL_MS);
	}
}
