/**
 * The agent: serves one host's VMs over the broker. It keeps no database: the `vm-*` processes it
 * finds (ps-list) and its state dir are the truth, re-read at start-up and reconciled on a timer.
 */
import {createHash, randomInt} from 'node:crypto';
import {readdir, rm, stat, writeFile} from 'node:fs/promises';
import {availableParallelism} from 'node:os';
import {join, resolve} from 'node:path';
import type {Logger} from 'pino';
import {AgentEndpoint, type HandlerResult, type RequestContext} from '../source/broker/agent-endpoint.js';
import {urlUser, type TlsOptions} from '../source/broker/connection.js';
import {HostRoster} from '../source/broker/host-roster.js';
import {DEFAULT_CONSOLE_BYTES, type ConsoleTail, type ProbeResult, type HostSnapshot, type HostStatus, type Image, type KloudEvent, type NetworkMode, type Request, type StartBody, type Vm} from '../source/protocol/index.js';
import {DEFAULT_RESTART_RULES, toVmState, type RestartRules} from './lifecycle.js';
import {capacityProblem, cpuBudget, DEFAULT_CPU_OVERCOMMIT, type HostLoad} from './capacity.js';
import {ConsoleHub} from './console-hub.js';
import {discoverVms} from './discover.js';
import {HostNetwork, type HostNetworkConfig} from './host-network.js';
import {listReply} from './list-version.js';
import {DEFAULT_CONSOLE_LOG_MAX_BYTES, DEFAULT_DNSMASQ_LOG_MAX_BYTES} from './log-cap.js';
import {readLogTail, rotateLog} from './log-files.js';
import {DEFAULT_VXLAN_ID, newMac} from './network.js';
import {othersUsageOf, usageOf, type QuotaConfig, type Usage} from './quota.js';
import {QuotaGuard} from './quota-guard.js';
import {reconcile} from './reconcile.js';
import type {GoneRecord, VmRecord} from './record.js';
import {seedFiles} from './seed.js';
import type {Runtime} from './runtime.js';
import {ManagedVm, VmTable} from './vm-table.js';
import {vmLoad} from './vm-load.js';
import {VmLifecycle, type VmFailure, type VmOutcome} from './vm-lifecycle.js';
import {startToken} from './start-token.js';
import {StateStore} from './store.js';
import {tenantNameProblem} from './tenant-name.js';
import {callerOf, mayActOn, type Caller} from './tenancy.js';
import {defaultUnderlayCidr, UnderlayFilter} from './underlay.js';
import {serveTutorial, UnsettledStarts} from './tutorial.js';
import {Migrations} from './migration.js';
import {auditRecord} from './audit.js';
import {BaseStore, type AcquiredBase} from './base-store.js';

export type AgentConfig = {
	readonly amqpUrl: string;
	readonly namespace: string;
	readonly hostId: string;
	readonly imagesDir: string;
	readonly stateDir: string;
	readonly accel: 'kvm' | 'tcg';
	readonly maxVms: number;
	readonly defaultMemoryMb: number;
	readonly defaultCpus: number;
	readonly graceSeconds: number;
	readonly heartbeatSeconds: number;
	/** AMQP heartbeat in seconds (how soon the broker drops a hung agent), apart from kloud's. */
	readonly amqpHeartbeatSeconds?: number;
	/** RabbitMQ users whose events count (default: the agent's own user). */
	readonly agentUsers?: ReadonlySet<string>;
	/** Peers' underlay addresses outside this CIDR never become VXLAN destinations (default: the /24 of `network.underlay`). */
	readonly underlayCidr?: string;
	/** Serve the tutorial's unversioned messages on this queue (usually `vm-queue`). */
	readonly tutorialQueue?: string;
	/** How long QEMU may take from spawn to answering QMP. */
	readonly qmpTimeoutMs?: number;
	/** Start guests paused (`-S`): QEMU runs and answers QMP, the guest CPU waits. For benchmarks and tests. */
	readonly startPaused?: boolean;
	/** The network of starts that do not name one (default `private`). */
	readonly networkDefault?: NetworkMode;
	/** Bridges, subnet, VXLAN and namespace; defaults: bridge `kloud0`, 10.77.0.0/24, slot 0, no VXLAN. */
	readonly network?: Partial<Omit<HostNetworkConfig, 'stateRoot'>>;
	/**
	 * Guest memory (MiB) this host may hand out in all: a start that would go past it is refused
	 * (or left for another host). Default: total memory less a reserve (`defaultMemoryBudgetMb`).
	 */
	readonly memoryBudgetMb?: number;
	/** vCPUs handed out per host core (default 16): a start past that budget is refused (or left for another host). */
	readonly cpuOvercommit?: number;
	/** Per-tenant limits on VMs, vCPUs and guest memory, across the fleet (`--quota`, `--quota-default`). */
	readonly quota?: QuotaConfig;
	/**
	 * Tenants mode: every request must carry its publisher's `userId` (validated by the broker);
	 * a tenant sees and acts on its own VMs only. Admins (and this agent's own user) see all.
	 */
	readonly tenants?: boolean;
	readonly admins?: readonly string[];
	/** Run QEMU as this unprivileged user (`-runas`). */
	readonly runAs?: string;
	/** CA and client certificate for `amqps://` URLs. */
	readonly tls?: TlsOptions;
	/** Cap of each VM's console log (`console.log` + `.1`, checked every second); default 1 MiB. */
	readonly consoleLogMaxBytes?: number;
	/** Cap of the private network's dnsmasq log (`dnsmasq.log` + `.1`); default 4 MiB. */
	readonly dnsmasqLogMaxBytes?: number;
	/** Restart backoff and crash-loop limit (default: 1 s doubling to 30 s, 5 restarts). */
	readonly restartRules?: Partial<RestartRules>;
	/** How long a VM must run before its earlier restarts no longer count towards the crash-loop limit (default 60 s). */
	readonly steadyMs?: number;
	/** How many VMs a start-up boots again at once (power loss, host reboot; default 4). */
	readonly recoveryParallelism?: number;
	/** Where this host's QEMUs take live migrations in (disk over NBD, RAM): default the underlay address; none: it takes none. */
	readonly migrationAddress?: string;
	/** Cap on a live migration's RAM stream out of this host, MiB/s (default 1024). */
	readonly migrationBandwidthMiBps?: number;
	/** Start cordoned: no new VMs, started or migrated in, until uncordoned. */
	readonly cordoned?: boolean;
	/** How often each running VM's CPU time and RSS are sampled (its load is measured between samples); default 2000 ms. */
	readonly loadSampleMs?: number;
};

/** Memory kept back for the host itself when no `--memory-budget` is given: 10 %, at least 1 GiB. */
export function defaultMemoryBudgetMb(totalMb: number): number {
	return Math.max(0, totalMb - Math.max(1024, Math.round(totalMb / 10)));
}


/** How long a start seen again may wait for a silent host, or for its VM starting elsewhere, before it is decided. */
const FLEET_LOOKUP_MS = 5000;

/** The same for a start that died in the queue: its requester stops listening soon after its TTL. */
const DEAD_LOOKUP_MS = 1000;

/** How long a quota check waits for the fleet's VM lists (a silent host's VMs are then not counted). */
const QUOTA_LOOKUP_MS = 2000;

/** How many deleted VMs (and their client tokens) the agent remembers, so a repeated delete or start gets the same answer. */
const GONE_MEMORY = 1024;

/** The private network's defaults. */
export const DEFAULT_PRIVATE_BRIDGE = 'kloud0';
export const DEFAULT_PRIVATE_SUBNET = '10.77.0.0/24';

type Failure = VmFailure;
type Outcome<T> = {readonly ok: true; readonly value: T} | Failure;

const RECONCILE_MS = 1000;

/** How old a VM's disk use in a list may be (`refreshDiskUse`): as often as loads are sampled. */
const DISK_USE_MAX_AGE_MS = 2000;

/** How often VMs' load is sampled unless `loadSampleMs` says. */
export const DEFAULT_LOAD_SAMPLE_MS = 2000;


/** Tokens are per owner: another tenant's token never finds your VM. */
function tokenKey(token: string, owner: string | null): string {
	return `${owner ?? ''}\u0000${token}`;
}

function newVmId(): string {
	let id = 'vm-';
	for (let index = 0; index < 8; index++) {
		id += String.fromCodePoint(97 + randomInt(26));
	}

	return id;
}

export class Agent {
	/**
	 * The agent without its broker connection: state read, running VMs adopted; VMs to boot again
	 * wait for `recoverAll()`. For in-process tests (requests through `handle`).
	 */
	static async create(config: AgentConfig, runtime: Runtime, log: Logger): Promise<Agent> {
		const agent = new Agent(config, runtime, log);
		await agent.store.init();
		await agent.#network.check();
		agent.#isCordoned ||= await stat(join(agent.store.root, 'cordoned')).then(() => true, () => false);
		await agent.reconcileState({isStartup: true});
		// Markers of VMs removed while this agent was down, and the bases only they used.
		void agent.collectBases();
		return agent;
	}

	static async start(config: AgentConfig, runtime: Runtime, log: Logger): Promise<Agent> {
		const agent = await Agent.create(config, runtime, log);
		agent.#endpoint = await AgentEndpoint.open(
			{
				url: config.amqpUrl,
				namespace: config.namespace,
				hostId: config.hostId,
				amqpHeartbeatSeconds: config.amqpHeartbeatSeconds,
				...(config.agentUsers === undefined ? {} : {agentUsers: config.agentUsers}),
				tutorialQueue: config.tutorialQueue,
				...(config.tls === undefined ? {} : {tls: config.tls}),
				log,
			},
			{
				handleRequest: async (request, context) => agent.handle(request, context),
				handleDeadStart: async (request, answer, context) => agent.handleDeadStart(request.body, {ok: false, ...answer}, context),
				handleEvent: event => agent.onPeerEvent(event),
				handleTutorial: async (content, delivery) => serveTutorial(content, agent, delivery, agent.#tutorialStarts),
				onConnectionState: state => {
					log.info({state: state.status, ...(state.status === 'connected' ? {broker: state.broker} : {}), ...(state.status === 'disconnected' ? {error: state.error} : {})}, 'broker connection');
					if (state.status === 'connected') {
						void agent.announce('host.hello');
					}
				},
			},
		);
		await agent.announce('host.hello');
		agent.#heartbeatTimer = setInterval(() => void agent.announce('host.heartbeat'), config.heartbeatSeconds * 1000);
		agent.#reconcileTimer = setInterval(() => void agent.reconcileState({isStartup: false}), RECONCILE_MS);
		agent.#loadTimer = setInterval(() => void agent.sampleLoads(), config.loadSampleMs ?? DEFAULT_LOAD_SAMPLE_MS);
		log.info({host: config.hostId, namespace: config.namespace, vms: agent.#vms.size}, 'agent ready');
		// Connected first, so each VM booted again is announced as it comes up.
		void agent.recoverAll();
		// Once peers' heartbeats are in: a migration out that this agent's restart cut short is settled.
		setTimeout(() => void agent.#migrations.settleInterrupted(), 3000).unref();
		return agent;
	}

	readonly config: AgentConfig;
	readonly store: StateStore;
	readonly #runtime: Runtime;
	readonly #log: Logger;
	readonly #network: HostNetwork;
	/** VM id → IPv4 address, refreshed when a snapshot is taken. */
	#addresses = new Map<string, string>();
	readonly #roster = new HostRoster();
	/** Every VM of this host: record, lifecycle state, process, operation under way. */
	readonly #vms = new VmTable<VmOutcome>();
	/** VMs the start-up found meant to run without a process: `recoverAll` boots them. */
	#toRecover: string[] = [];
	readonly #rules: RestartRules;
	/** Carries out the lifecycle (lifecycle.ts decides): stop, boot, reboot, delete, restarts, recovery. */
	readonly #lifecycle: VmLifecycle;
	/** Starts under way, by owner and client token. */
	readonly #starts = new Map<string, Promise<Outcome<Vm>>>();
	/** Recently deleted VMs, oldest first: a repeated delete, or a repeated start of the same token, gets the same VM. */
	readonly #gone = new Map<string, GoneRecord>();
	/** Lines in the state root's `gone.jsonl`. */
	#goneLines = 0;
	readonly #startedAt = Date.now();
	#startsInFlight = 0;
	/** Guest memory and vCPUs of the starts under way. */
	#startsInFlightMb = 0;
	#startsInFlightCpus = 0;
	readonly #quota: QuotaGuard;
	readonly #tutorialStarts = new UnsettledStarts();
	#endpoint: AgentEndpoint | undefined;
	#heartbeatTimer: NodeJS.Timeout | undefined;
	#reconcileTimer: NodeJS.Timeout | undefined;
	#loadTimer: NodeJS.Timeout | undefined;
	#isReconciling = false;
	#imageNames: string[] = [];
	readonly #underlayFilter: UnderlayFilter;
	/** Every running VM's serial port, and the console sessions on it. */
	readonly #consoles: ConsoleHub;
	/** Live migrations out of and into this host (migration.ts). */
	readonly #migrations: Migrations;
	/** Cordoned: takes no new VMs (starts, migrations in). */
	#isCordoned: boolean;
	/** The immutable, content-addressed copies of the images that VMs' overlays are on (`base-store.ts`). */
	readonly #bases: BaseStore;

	private constructor(config: AgentConfig, runtime: Runtime, log: Logger) {
		this.config = config;
		this.store = new StateStore(config.stateDir);
		this.#runtime = runtime;
		this.#log = log;
		this.#rules = {...DEFAULT_RESTART_RULES, ...config.restartRules};
		this.#underlayFilter = new UnderlayFilter(config.underlayCidr ?? defaultUnderlayCidr(config.network?.underlay), log);
		this.#consoles = new ConsoleHub({publish: (queue, content) => this.#endpoint?.publishConsole(queue, content) ?? false, log});
		// Starts under way are reserved by the guard: here only VMs past `starting` count.
		this.#quota = new QuotaGuard(config.quota, {
			fleet: async owner => this.fleetUsage(owner),
			local: owner => usageOf(this.#vms.values().filter(vm => vm.life.phase !== 'creating').map(vm => this.toVm(vm)), owner),
		});
		this.#network = new HostNetwork(
			{
				privateBridge: DEFAULT_PRIVATE_BRIDGE,
				privateSubnet: DEFAULT_PRIVATE_SUBNET,
				privateSlot: 0,
				vxlanId: DEFAULT_VXLAN_ID,
				tenants: config.tenants ?? false,
				...config.network,
				stateRoot: this.store.root,
			},
			runtime,
			log,
		);
		this.#lifecycle = new VmLifecycle({
			config,
			runtime,
			store: this.store,
			network: this.#network,
			log,
			rules: this.#rules,
			table: this.#vms,
			toVm: vm => this.toVm(vm),
			publish: (type, vm) => void this.publishVm(type, vm),
			capacityProblem: (ask, options) => this.capacityProblem(ask, options),
			onSettled: () => void this.updateCapacity(),
			gone: vmId => this.#gone.get(vmId),
			remember: async (record, vm) => this.remember(record, vm),
			onSpawned: (vmId, paths) => this.#consoles.watch(vmId, paths, {isNewProcess: true}),
		});
		this.#isCordoned = config.cordoned ?? false;
		this.#bases = new BaseStore({
			imagesDir: config.imagesDir,
			stateRoot: this.store.root,
			agentKey: createHash('sha256').update(resolve(this.store.root)).digest('hex').slice(0, 16),
			hostId: config.hostId,
			log: log.child({part: 'bases'}),
		});
		this.#migrations = new Migrations({
			bases: this.#bases,
			hostId: config.hostId,
			imagesDir: config.imagesDir,
			migrationAddress: config.migrationAddress ?? config.network?.underlay,
			...(config.migrationBandwidthMiBps === undefined ? {} : {bandwidthMiBps: config.migrationBandwidthMiBps}),
			runtime,
			store: this.store,
			network: this.#network,
			lifecycle: this.#lifecycle,
			table: this.#vms,
			log,
			isCordoned: () => this.#isCordoned,
			peers: () => this.livePeers(),
			imageNames: async () => (await this.images()).map(image => image.name),
			collectBases: async () => this.collectBases(),
			capacityProblem: ask => this.capacityProblem(ask),
			askHost: async (hostId, draft, timeoutMs) => {
				if (!this.#endpoint) {
					throw new Error('not connected to the broker');
				}

				return this.#endpoint.askHost(hostId, draft, timeoutMs);
			},
			toVm: vm => this.toVm(vm),
			refreshAddresses: async () => this.refreshAddresses(),
			publish: (type, vm) => void this.publishVm(type, vm),
			consoleMoved: (vmId, to) => this.#consoles.moved(vmId, to),
		});
	}

	/** Disconnects and leaves every VM running: a restarted agent adopts them. */
	async shutdown(): Promise<void> {
		clearInterval(this.#heartbeatTimer);
		clearInterval(this.#reconcileTimer);
		clearInterval(this.#loadTimer);
		this.#lifecycle.cancelTimers();

		this.#consoles.close(`the agent on host ${this.config.hostId} stopped (the VM runs on): attach again once it is back`);
		await this.#endpoint?.publishEvent({type: 'host.down', body: {id: this.config.hostId}}).catch(() => {});
		await this.#endpoint?.close();
	}

	// ---- requests ----

	/** Serves one request; one that changes something is reported on the events exchange (`request.handled`, who did what). */
	async handle(request: Request, context: RequestContext): Promise<HandlerResult> {
		const startedAt = Date.now();
		const result = await this.serve(request, context);
		this.audit(request, result, {user: context.userId ?? null, sender: request.from, startedAt});
		return result;
	}

	private audit(request: Request, result: HandlerResult, options: {readonly user: string | null; readonly sender?: string; readonly startedAt: number}): void {
		const body = auditRecord(request, result, {user: options.user, ...(options.sender === undefined ? {} : {sender: options.sender}), durationMs: Date.now() - options.startedAt});
		if (body) {
			void this.#endpoint?.publishEvent({type: 'request.handled', body}).catch((error: unknown) => {
				this.#log.debug({err: error}, 'audit event not sent');
			});
		}
	}

	private async serve(request: Request, context: RequestContext): Promise<HandlerResult> {
		const caller = this.caller(context);
		if (!caller) {
			return {ok: false, code: 'forbidden', reason: `host ${this.config.hostId} serves tenants: a request must carry its user id (AMQP userId, checked by the broker)`};
		}

		const badName = this.config.tenants && caller.user !== null ? tenantNameProblem(caller.user) : undefined;
		if (badName) {
			return {ok: false, code: 'forbidden', reason: `host ${this.config.hostId} serves tenants: ${badName}`};
		}

		switch (request.type) {
			case 'vm.start': {
				// Every start is idempotent: without a client token, its token is derived from the message.
				const body = {...request.body, clientToken: startToken(request.body.clientToken, {...context, body: JSON.stringify(request)}).token};
				const found = await this.findStart(body.clientToken, caller.user, {isRepeat: context.isRepeat});
				if (found) {
					return found;
				}

				if (context.via === 'work' && !this.hasCapacity(this.askOf(body))) {
					return {ok: 'requeue'};
				}

				return this.startWithinQuota(body, caller.user);
			}

			case 'vm.stop': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.stop(request.body.vmId, {isKill: false, graceSeconds: request.body.graceSeconds ?? this.config.graceSeconds});
			}

			case 'vm.kill': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.stop(request.body.vmId, {isKill: true, graceSeconds: 0});
			}

			case 'vm.boot': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.boot(request.body.vmId);
			}

			case 'vm.reboot': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.reboot(request.body.vmId, {isHard: request.body.hard ?? false, isRepeat: context.isRepeat});
			}

			case 'vm.delete': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.delete(request.body.vmId, {graceSeconds: request.body.graceSeconds ?? 0});
			}

			case 'vm.list': {
				const snapshot = await this.snapshot();
				const visible = caller.isAdmin ? snapshot : {...snapshot, vms: snapshot.vms.filter(vm => vm.owner === caller.user)};
				return {ok: true, value: listReply(visible, this.config.hostId, request.body)};
			}

			case 'images.list': {
				return {ok: true, value: {host: this.config.hostId, images: await this.images(), roster: this.rosterIds()}};
			}

			case 'vm.console': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.consoleTail(request.body.vmId, request.body.bytes ?? DEFAULT_CONSOLE_BYTES);
			}

			case 'vm.console.attach': {
				const unknown = this.#vms.has(request.body.vmId) ? undefined : ({ok: false, code: 'unknown_vm', reason: `no VM ${request.body.vmId} on host ${this.config.hostId}`} as const);
				return this.refuseOthers(request.body.vmId, caller) ?? unknown ?? this.#consoles.serve(request, caller.user, this.config.hostId);
			}

			case 'vm.console.input':
			case 'vm.console.detach': {
				return this.#consoles.serve(request, caller.user, this.config.hostId);
			}

			case 'vm.migrate': {
				return this.refuseTenants(caller, 'migrate a VM') ?? this.#migrations.migrate(request.body.vmId, request.body.to);
			}

			case 'host.cordon': {
				return this.refuseTenants(caller, 'cordon a host') ?? this.cordon(request.body.cordoned);
			}

			case 'vm.probe': {
				return this.refuseOthers(request.body.vmId, caller) ?? this.probe(request.body.vmId, request.body.port, request.body.timeoutMs ?? 2000);
			}

			case 'vm.migrate.prepare': {
				return this.refuseTenants(caller, 'take a VM in') ?? this.#migrations.prepare(request.body.from, request.body.vm, request.body.seed);
			}

			case 'vm.migrate.commit': {
				return this.refuseTenants(caller, 'take a VM in') ?? this.#migrations.commit(request.body.vmId, request.body.from);
			}

			case 'vm.migrate.abort': {
				return this.refuseTenants(caller, 'take a VM in') ?? this.#migrations.abort(request.body.vmId, request.body.from);
			}
		}
	}

	/** For the tutorial's messages (no owner): the VM of this start's token, else a new one. */
	async startOnce(body: StartBody, options: {readonly isRepeat: boolean}): Promise<Outcome<Vm>> {
		return (await this.findStart(body.clientToken, null, options)) ?? this.startWithinQuota(body, null);
	}

	/**
	 * The VM a start with this token made: known here, or, for a start seen before (redelivered, or
	 * resent after a lost connection), on another host that may have taken its first copy.
	 */
	private async findStart(token: string | undefined, owner: string | null, options: {readonly isRepeat: boolean}): Promise<Outcome<Vm> | undefined> {
		const known = this.knownStart(token, owner);
		if (known) {
			return known;
		}

		return options.isRepeat && token !== undefined ? this.startElsewhere(token, owner, {budgetMs: FLEET_LOOKUP_MS}) : undefined;
	}

	/**
	 * Starts a VM if its owner's quota allows. The quota holds across the fleet: the owner's VMs on
	 * the other live hosts (a list round, as the token lookup runs) plus its VMs and starts under
	 * way here (`QuotaGuard`). Hosts deciding for one owner at the same moment can each let one
	 * start through (README, "Limits").
	 */
	private async startWithinQuota(body: StartBody, owner: string | null): Promise<Outcome<Vm>> {
		return this.#quota.admit(owner, this.askOf(body), async () => this.start(body, {owner}));
	}

	/** An owner's VMs on the other live hosts (those that answer within the lookup's time). */
	private async fleetUsage(owner: string): Promise<Usage> {
		const round = await this.#endpoint?.listRound({timeoutMs: QUOTA_LOOKUP_MS, expected: this.rosterIds()}).catch(() => undefined);
		if (round?.missing.length) {
			this.#log.warn({missing: round.missing, owner}, 'quota check: hosts stayed silent, their VMs are not counted');
		}

		const others = (round?.snapshots ?? []).filter(snapshot => snapshot.host.id !== this.config.hostId);
		return othersUsageOf(others.flatMap(snapshot => snapshot.vms), vmId => this.#vms.has(vmId), owner);
	}

	private askOf(body: StartBody): {readonly memoryMb: number; readonly cpus: number} {
		return {memoryMb: body.memoryMb ?? this.config.defaultMemoryMb, cpus: body.cpus ?? this.config.defaultCpus};
	}

	/**
	 * Starts a VM, or, when a start with the same client token (and owner) made one already or is
	 * making it, answers with that one: a redelivered or retried start never makes a second VM.
	 */
	async start(body: StartBody, options: {readonly owner?: string | null} = {}): Promise<Outcome<Vm>> {
		const owner = options.owner ?? null;
		const known = this.knownStart(body.clientToken, owner);
		if (known) {
			return known;
		}

		const {memoryMb, cpus} = this.askOf(body);
		const full = this.capacityProblem({memoryMb, cpus});
		if (full) {
			return {ok: false, code: 'no_capacity', reason: full};
		}

		const key = body.clientToken === undefined ? undefined : tokenKey(body.clientToken, owner);
		this.#startsInFlight++;
		this.#startsInFlightMb += memoryMb;
		this.#startsInFlightCpus += cpus;
		const attempt = this.createVm(body, owner).finally(() => {
			this.#startsInFlight--;
			this.#startsInFlightMb -= memoryMb;
			this.#startsInFlightCpus -= cpus;
			if (key) {
				this.#starts.delete(key);
			}

			void this.updateCapacity();
		});
		if (key) {
			this.#starts.set(key, attempt);
		}

		void this.updateCapacity();
		return attempt;
	}

	/** The VM a start with this token (from this owner) made, is making, or made and saw stopped. */
	private knownStart(token: string | undefined, owner: string | null): Promise<Outcome<Vm>> | Outcome<Vm> | undefined {
		if (token === undefined) {
			return undefined;
		}

		// A start under way first: its answer is the VM once it runs, not while it is starting.
		const pending = this.#starts.get(tokenKey(token, owner));
		if (pending) {
			return pending;
		}

		const existing = this.#vms.values().find(vm => vm.record.clientToken === token && vm.record.owner === owner);
		if (existing) {
			return {ok: true, value: this.toVm(existing)};
		}

		const gone = [...this.#gone.values()].find(entry => entry.clientToken === token && entry.owner === owner);
		return gone ? {ok: true, value: gone.vm} : undefined;
	}

	/**
	 * A start that died in the queue gets "no host had capacity", unless its token's VM exists
	 * after all (here or on another host): a copy sent before a lost connection was served, and
	 * this resent one waited behind it until it expired.
	 */
	async handleDeadStart(body: StartBody, answer: Failure, context: {readonly userId?: string}): Promise<HandlerResult> {
		const startedAt = Date.now();
		const result = await this.answerDeadStart(body, answer, context);
		// Reported as the start's outcome: who asked, and that no host had room.
		this.audit({v: 1, id: 'dead', from: this.config.hostId, ts: startedAt, type: 'vm.start', body}, result, {user: context.userId ?? null, startedAt});
		return result;
	}

	private async answerDeadStart(body: StartBody, answer: Failure, context: {readonly userId?: string}): Promise<HandlerResult> {
		if (body.clientToken === undefined) {
			return answer;
		}

		const owner = context.userId ?? null;
		// Briefly: its requester listens only a little longer than the start's TTL.
		return (await (this.knownStart(body.clientToken, owner) ?? this.startElsewhere(body.clientToken, owner, {budgetMs: DEAD_LOOKUP_MS}))) ?? answer;
	}

	/**
	 * Looks for the VM of a start token across the fleet (a `vm.list` round, repeated while a host
	 * is silent or the VM is still starting, within `budgetMs`): that VM once it runs, or
	 * undefined when no host has it.
	 */
	private async startElsewhere(token: string, owner: string | null, options: {readonly budgetMs: number}): Promise<Outcome<Vm> | undefined> {
		const deadline = Date.now() + options.budgetMs;
		while (this.#endpoint) {
			const round = await this.#endpoint.listRound({timeoutMs: Math.max(100, Math.min(1000, deadline - Date.now())), expected: this.rosterIds()}).catch(() => undefined);
			const vm = round?.snapshots.flatMap(snapshot => snapshot.vms).find(entry => entry.clientToken === token && (entry.owner ?? null) === owner);
			const isDone = vm ? vm.state !== 'starting' : round !== undefined && round.missing.length === 0;
			if (isDone || Date.now() > deadline) {
				if (vm) {
					this.#log.info({vm: vm.id, host: vm.host}, 'a start seen again: found the VM its token made');
				} else if (round?.missing.length) {
					this.#log.warn({missing: round.missing}, 'a start seen again: hosts that may have made its VM stay silent');
				}

				return vm ? {ok: true, value: vm} : undefined;
			}

			await new Promise(resolve => setTimeout(resolve, 250));
		}

		return undefined;
	}

	/** Who sent a request; undefined when tenants mode needs a user id and the request has none. */
	private caller(context: RequestContext): Caller | undefined {
		return callerOf(context.userId, {tenants: this.config.tenants ?? false, agentUser: urlUser(this.config.amqpUrl), admins: this.config.admins ?? []});
	}

	/** A tenant may act only on its own VMs: refuses another's (one the caller may not see). */
	private refuseOthers(vmId: string, caller: Caller): Failure | undefined {
		const known = this.#vms.get(vmId)?.record ?? this.#gone.get(vmId);
		if (mayActOn(caller, known?.owner)) {
			return undefined;
		}

		return {ok: false, code: 'forbidden', reason: `VM ${vmId} on host ${this.config.hostId} belongs to another tenant`};
	}

	/** The tail of a VM's serial console log. */
	async consoleTail(vmId: string, bytes: number): Promise<Outcome<ConsoleTail>> {
		if (!this.#vms.has(vmId)) {
			return {ok: false, code: 'unknown_vm', reason: `no VM ${vmId} on host ${this.config.hostId}`};
		}

		const tail = await readLogTail(this.store.paths(vmId).console, bytes);
		return {ok: true, value: {vmId, host: this.config.hostId, data: tail.data.toString('utf8'), sizeBytes: tail.sizeBytes}};
	}

	/**
	 * A TCP connect to a VM's address and `port` from where this host reaches its guests: the
	 * agent's `--netns` for TAP networks (`private`, `public`), else its own namespace. A VM
	 * without an address (no lease yet, or a `user` or `none` network) is answered not open.
	 */
	async probe(vmId: string, port: number, timeoutMs: number): Promise<Outcome<ProbeResult>> {
		const vm = this.#vms.get(vmId);
		if (!vm) {
			return {ok: false, code: 'unknown_vm', reason: `no VM ${vmId} on host ${this.config.hostId}`};
		}

		const base = {vmId, host: this.config.hostId, port};
		const {network} = vm.record;
		if (network !== 'private' && network !== 'public') {
			return {ok: true, value: {...base, address: null, isOpen: false, ms: 0, error: `VM ${vmId} has network ${network}: the host cannot reach it (use private or public)`}};
		}

		await this.refreshAddresses();
		const address = vm.process === undefined ? undefined : this.#addresses.get(vmId);
		if (address === undefined) {
			return {ok: true, value: {...base, address: null, isOpen: false, ms: 0, error: `VM ${vmId} has no address yet`}};
		}

		const netns = this.config.network?.netns;
		const probe = await this.#runtime.probeTcp(address, port, {timeoutMs, ...(netns === undefined ? {} : {netns})});
		return {ok: true, value: {...base, address, ...probe}};
	}

	async snapshot(): Promise<HostSnapshot> {
		await Promise.all([this.refreshAddresses(), this.refreshDiskUse()]);
		return {host: this.status(), vms: this.vms(), roster: this.rosterIds()};
	}

	vms(): Vm[] {
		return this.#vms.values().map(vm => this.toVm(vm)).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
	}

	async images(): Promise<Image[]> {
		const entries = await readdir(this.config.imagesDir, {withFileTypes: true}).catch(() => []);
		const images: Image[] = [];
		for (const entry of entries) {
			const match = /^([a-zA-Z\d][\w.-]{0,63})\.qcow2$/.exec(entry.name);
			if (match?.[1] && (entry.isFile() || entry.isSymbolicLink()) && !match[1].includes('..')) {
				const info = await stat(join(this.config.imagesDir, entry.name)).catch(() => undefined);
				if (info?.isFile()) {
					images.push({name: match[1], sizeBytes: info.size});
				}
			}
		}

		return images.sort((a, b) => a.name.localeCompare(b.name));
	}

	/** Migrations and the agents' own requests between hosts are the operators' (admins') alone. */
	private refuseTenants(caller: Caller, what: string): HandlerResult | undefined {
		return caller.isAdmin ? undefined : {ok: false, code: 'forbidden', reason: `only an admin may ${what} on host ${this.config.hostId}`};
	}

	/** Cordons or uncordons this host (kept in the state root's `cordoned` file across restarts); answers its status. */
	private async cordon(isCordoned: boolean): Promise<HandlerResult> {
		const marker = join(this.store.root, 'cordoned');
		try {
			await (isCordoned ? writeFile(marker, `${new Date().toISOString()}\n`) : rm(marker, {force: true}));
		} catch (error) {
			return {ok: false, code: 'internal', reason: `could not ${isCordoned ? 'cordon' : 'uncordon'} host ${this.config.hostId}: ${(error as Error).message}`};
		}

		if (this.#isCordoned !== isCordoned) {
			this.#log.info({cordoned: isCordoned}, isCordoned ? 'host cordoned' : 'host uncordoned');
		}

		this.#isCordoned = isCordoned;
		void this.updateCapacity();
		void this.announce('host.heartbeat');
		return {ok: true, value: this.status()};
	}

	/** The live hosts but this one, as their last heartbeats describe them. */
	private livePeers(): HostStatus[] {
		const live = new Set(this.#roster.live(Date.now()));
		return this.#roster
			.entries()
			.filter(entry => entry.status.id !== this.config.hostId && live.has(entry.status.id))
			.map(entry => entry.status);
	}

	status(): HostStatus {
		const memory = this.#runtime.memoryInfo();
		const load = this.load();
		return {
			id: this.config.hostId,
			vmCount: this.#vms.size,
			maxVms: this.config.maxVms,
			freeMemoryMb: memory.freeMb,
			totalMemoryMb: memory.totalMb,
			accel: this.config.accel,
			images: this.#imageNames,
			heartbeatMs: this.config.heartbeatSeconds * 1000,
			startedAt: this.#startedAt,
			...(this.#network.config.underlay === undefined ? {} : {underlay: this.#network.config.underlay, privateSlot: this.#network.layout.slot}),
			...(this.#endpoint?.connection.broker === undefined ? {} : {broker: this.#endpoint.connection.broker}),
			...(this.#isCordoned ? {cordoned: true} : {}),
			memoryBudgetMb: load.memoryBudgetMb,
			memoryCommittedMb: load.memoryMb,
			cpuBudget: load.cpuBudget,
			cpusCommitted: load.cpus,
		};
	}

	// ---- internals ----

	/** Whether one more VM of this size fits under `--max-vms`, the memory budget and the vCPU budget. */
	private hasCapacity(ask: {readonly memoryMb: number; readonly cpus: number}): boolean {
		return this.capacityProblem(ask) === undefined;
	}

	/** Why one more VM of this size does not fit, or undefined when it does. */
	private capacityProblem(ask: {readonly memoryMb: number; readonly cpus: number}, options: {readonly excluding?: string} = {}): string | undefined {
		// Cordoned: no new VMs (a VM of this host booted again, `excluding` itself, still may).
		if (this.#isCordoned && options.excluding === undefined) {
			return `host ${this.config.hostId} is cordoned`;
		}

		return capacityProblem(this.load(options), ask);
	}

	/** What this host holds against its budgets (VMs that may run, starts and migrations under way), `excluding` one VM. */
	private load(options: {readonly excluding?: string} = {}): HostLoad {
		const incoming = this.#migrations.incomingLoad();
		let memoryMb = this.#startsInFlightMb + incoming.memoryMb;
		let cpus = this.#startsInFlightCpus + incoming.cpus;
		for (const vm of this.#vms.values()) {
			// A creating VM is counted with the starts under way; a stopped or crashed one holds no
			// memory nor CPU (but keeps its place under --max-vms: its disk is here).
			if (vm.id !== options.excluding && vm.life.phase !== 'creating' && isHolding(vm.life.phase)) {
				memoryMb += vm.record.memoryMb;
				cpus += vm.record.cpus;
			}
		}

		return {
			hostId: this.config.hostId,
			vms: this.#vms.size - (options.excluding !== undefined && this.#vms.has(options.excluding) ? 1 : 0) + this.#startsInFlight + incoming.count,
			maxVms: this.config.maxVms,
			memoryMb,
			memoryBudgetMb: this.memoryBudgetMb(),
			cpus,
			cpuBudget: cpuBudget(availableParallelism(), this.config.cpuOvercommit ?? DEFAULT_CPU_OVERCOMMIT),
		};
	}

	private memoryBudgetMb(): number {
		return this.config.memoryBudgetMb ?? defaultMemoryBudgetMb(this.#runtime.memoryInfo().totalMb);
	}

	private async updateCapacity(): Promise<void> {
		// Take starts from the shared queue only while a VM of the default size still fits.
		await this.#endpoint?.setAcceptingStarts(this.hasCapacity({memoryMb: this.config.defaultMemoryMb, cpus: this.config.defaultCpus})).catch((error: unknown) => {
			this.#log.warn({err: error}, 'could not change the start consumer');
		});
	}

	private rosterIds(): string[] {
		const ids = new Set(this.#roster.live(Date.now()));
		ids.add(this.config.hostId);
		return [...ids].sort();
	}

	private onPeerEvent(event: KloudEvent): void {
		this.#roster.observe(event, Date.now());
		// A newcomer learns who is alive from our answer instead of waiting a full heartbeat period.
		// Always answer: a heartbeat we sent a moment ago may have gone out before its event queue existed.
		if (event.type === 'host.hello' && event.body.id !== this.config.hostId) {
			void this.announce('host.heartbeat');
		}
	}

	private async announce(type: 'host.hello' | 'host.heartbeat'): Promise<void> {
		try {
			this.#imageNames = (await this.images()).map(image => image.name);
			if (type === 'host.hello') {
				await this.#endpoint?.publishEvent({type: 'host.hello', body: {id: this.config.hostId}});
			}

			await this.#endpoint?.publishEvent({type: 'host.heartbeat', body: this.status()});
		} catch (error) {
			this.#log.debug({err: error}, 'heartbeat not sent');
		}
	}

	private async publishVm(type: 'vm.started' | 'vm.stopped' | 'vm.crashed' | 'vm.rebooted' | 'vm.deleted', vm: Vm): Promise<void> {
		await this.#endpoint?.publishEvent({type, body: {vm}}).catch((error: unknown) => {
			this.#log.debug({err: error, type}, 'event not sent');
		});
	}

	private toVm(vm: ManagedVm<VmOutcome>): Vm {
		const {record, life} = vm;
		const state = toVmState(life.phase);
		const pid = vm.process !== undefined && state !== 'stopped' && state !== 'crashed' && state !== 'deleted' ? vm.process.ref.pid : null;
		const migration = this.#migrations.progressOf(record.id);
		return {
			id: record.id,
			host: this.config.hostId,
			image: record.image,
			state,
			memoryMb: record.memoryMb,
			cpus: record.cpus,
			pid,
			createdAt: record.createdAt,
			uptimeSeconds: state === 'running' && record.startedAt !== null ? Math.max(0, Math.round((Date.now() - record.startedAt) / 1000)) : null,
			ip: pid === null ? null : (this.#addresses.get(record.id) ?? null),
			mac: record.mac,
			network: record.network,
			exit: record.exit,
			owner: record.owner,
			clientToken: record.clientToken,
			desired: life.desired,
			restart: life.policy,
			restarts: {count: life.restarts, limit: this.#rules.limit},
			...(record.diskBytes === null ? {} : {disk: {sizeBytes: record.diskBytes, usedBytes: vm.diskUsedBytes ?? 0}}),
			...(vm.load && state === 'running' ? {load: vm.load} : {}),
			...(migration === undefined ? {} : {migration}),
		};
	}

	private async refreshAddresses(): Promise<void> {
		try {
			this.#addresses = await this.#network.addresses(this.#vms.values().map(vm => vm.record));
		} catch (error) {
			this.#log.debug({err: error}, 'addresses not read');
		}
	}

	/**
	 * Samples each running VM's QEMU process (CPU time, RSS) and measures its load since the last
	 * sample (`vm-load.ts`). A VM that is not running, or whose process changed, starts afresh.
	 */
	async sampleLoads(): Promise<void> {
		await Promise.all(
			this.#vms.values().map(async vm => {
				const ref = vm.process?.ref;
				const usage = ref && vm.life.phase === 'running' ? await this.#runtime.processUsage(ref).catch(() => undefined) : undefined;
				if (!usage) {
					vm.usage = undefined;
					vm.load = undefined;
					return;
				}

				const sample = {at: Date.now(), ...usage};
				vm.load = vmLoad(vm.usage, sample, vm.record.cpus);
				vm.usage = sample;
			}),
		);
	}

	/**
	 * Reads the overlays' allocated bytes for a list, each at most every `DISK_USE_MAX_AGE_MS`: a
	 * TUI or a poller listing many times a second would otherwise stat every disk each time (with 50
	 * VMs, a fifth of the agent's CPU while it booted them again after a power loss).
	 */
	private async refreshDiskUse(): Promise<void> {
		const now = Date.now();
		await Promise.all(
			this.#vms
				.values()
				.filter(vm => vm.diskUsedAt === undefined || now - vm.diskUsedAt >= DISK_USE_MAX_AGE_MS)
				.map(async vm => {
					const info = await stat(this.store.paths(vm.id).disk).catch(() => undefined);
					vm.diskUsedBytes = info ? info.blocks * 512 : 0;
					// A disk not made yet (a start under way) is read again at the next list.
					vm.diskUsedAt = info ? now : undefined;
				}),
		);
	}

	/** The peers (from heartbeats) whose private bridges this host joins over VXLAN. */
	private peers(): Array<{hostId: string; underlay: string; slot: number | undefined}> {
		const now = Date.now();
		const live = new Set(this.#roster.live(now));
		return this.#roster
			.entries()
			.filter(entry => entry.status.id !== this.config.hostId && live.has(entry.status.id) && entry.status.underlay !== undefined)
			.map(entry => ({hostId: entry.status.id, underlay: entry.status.underlay!, slot: entry.status.privateSlot}))
			.filter(peer => this.#underlayFilter.accepts(peer));
	}

	private async createVm(body: StartBody, owner: string | null): Promise<VmOutcome> {
		const basePath = resolve(this.config.imagesDir, `${body.image}.qcow2`);
		const image = await stat(basePath).catch(() => undefined);
		if (!image?.isFile()) {
			const names = (await this.images()).map(image => image.name);
			return {
				ok: false,
				code: 'unknown_image',
				reason: `no image "${body.image}" on host ${this.config.hostId} (it has: ${names.length > 0 ? names.join(', ') : 'none'})`,
			};
		}

		let id = newVmId();
		while (this.#vms.has(id) || (await this.store.exists(id))) {
			id = newVmId();
		}

		// The overlay goes on an immutable copy of the image's content now: replacing the image later
		// changes new VMs only. Held (safe from the clean-up) until the VM's directory exists.
		let base: AcquiredBase;
		let baseBytes: number;
		try {
			base = await this.#bases.acquire(body.image, id);
		} catch (error) {
			return {ok: false, code: 'start_failed', reason: `could not start a VM from image "${body.image}" on host ${this.config.hostId}: ${(error as Error).message}`};
		}

		try {
			baseBytes = (await this.#runtime.imageInfo(base.path)).virtualBytes;
		} catch (error) {
			base.release();
			return {ok: false, code: 'start_failed', reason: `could not start a VM from image "${body.image}" on host ${this.config.hostId}: ${(error as Error).message}`};
		}

		const diskBytes = body.diskMb === undefined ? baseBytes : body.diskMb * MIB;
		if (diskBytes < baseBytes) {
			base.release();
			return {
				ok: false,
				code: 'bad_request',
				reason: `a disk of ${body.diskMb} MiB is smaller than image "${body.image}" (${Math.ceil(baseBytes / MIB)} MiB): ask for at least that much, or leave the disk size out`,
			};
		}

		const network = body.network ?? this.config.networkDefault ?? 'private';
		const takenMacs = new Set(this.#vms.values().flatMap(other => (other.record.mac === null ? [] : [other.record.mac])));
		const record: VmRecord = {
			id,
			image: body.image,
			memoryMb: body.memoryMb ?? this.config.defaultMemoryMb,
			cpus: body.cpus ?? this.config.defaultCpus,
			createdAt: Date.now(),
			phase: 'creating',
			startedAt: null,
			clientToken: body.clientToken ?? null,
			owner,
			exit: null,
			network,
			mac: network === 'none' ? null : newMac(takenMacs),
			desired: 'running',
			restart: body.restart ?? 'on-failure',
			restarts: 0,
			diskBytes,
		};
		const vm = new ManagedVm<VmOutcome>(record);
		try {
			const paths = await this.store.create(record).finally(() => base.release());
			this.#vms.add(vm);
			// The three steps are independent: run them side by side (each is mostly a child process).
			// allSettled: on a failure the cleanup below must not race a step still under way.
			const steps = await Promise.allSettled([
				this.#runtime.createOverlay(base.path, paths.disk, body.diskMb === undefined ? {} : {sizeBytes: diskBytes}),
				// Always a seed, user-data or not: it gives the guest its hostname (the VM id). It lives in
				// the VM's directory, so it stays while the VM does (a boot again uses it as it is).
				this.#runtime.createSeedIso(seedFiles({vmId: id, userData: body.userData, sshKeys: body.sshKeys}), paths.seed),
				network === 'private' || network === 'public' ? this.#network.attach(id, network, {mac: record.mac!, owner}) : undefined,
			]);
			const failed = steps.find(step => step.status === 'rejected');
			if (failed) {
				throw failed.reason;
			}
		} catch (error) {
			this.#log.warn({vm: id, err: error}, 'VM start failed');
			await this.#lifecycle.discard(id, record);
			return {ok: false, code: 'start_failed', reason: `could not start a VM from image "${body.image}" on host ${this.config.hostId}: ${(error as Error).message}`};
		}

		const spawned = await this.#lifecycle.spawn(vm, {isAttached: true});
		if (!spawned.ok) {
			await this.#lifecycle.discard(id, vm.record);
			return {ok: false, code: 'start_failed', reason: `could not start a VM from image "${body.image}" on host ${this.config.hostId}: ${spawned.reason}`};
		}

		return this.#lifecycle.confirmStarted(vm);
	}

	/** Stops a VM (the power button, SIGKILL after `graceSeconds`; at once with `isKill`): kept, listed as stopped. */
	async stop(vmId: string, options: {readonly isKill: boolean; readonly graceSeconds: number}): Promise<VmOutcome> {
		return this.#lifecycle.stop(vmId, options);
	}

	/** Boots a stopped or crashed VM again (same id, MAC, disk, seed); checked against capacity like a start. */
	async boot(vmId: string): Promise<VmOutcome> {
		return this.#lifecycle.boot(vmId);
	}

	/** Reboots a running VM: soft (power button, booted again) or hard (`system_reset`). */
	async reboot(vmId: string, options: {readonly isHard: boolean; readonly isRepeat?: boolean}): Promise<VmOutcome> {
		return this.#lifecycle.reboot(vmId, options);
	}

	/** Deletes a VM (stopped first if it runs) and everything of it; then the bases nothing uses any more. */
	async delete(vmId: string, options: {readonly graceSeconds: number}): Promise<VmOutcome> {
		const outcome = await this.#lifecycle.delete(vmId, options);
		if (outcome.ok) {
			void this.collectBases();
		}

		return outcome;
	}

	/** Removes the bases no VM uses any more (`BaseStore.collect`); never fails the caller. */
	async collectBases(): Promise<readonly string[]> {
		try {
			return (await this.#bases.collect()).removed;
		} catch (error) {
			this.#log.warn({err: error}, 'bases not cleaned up');
			return [];
		}
	}

	/** Boots again the VMs the start-up found meant to run without their process (power loss, host reboot). */
	async recoverAll(): Promise<void> {
		const ids = this.#toRecover;
		this.#toRecover = [];
		await this.#lifecycle.recoverAll(ids);
	}

	/** Keeps a deleted VM's last state (bounded, in memory and in the state root), for repeated deletes and starts of its token. */
	private async remember(record: VmRecord, vm: Vm): Promise<void> {
		const entry: GoneRecord = {vm, owner: record.owner, clientToken: record.clientToken};
		this.keepGone(entry);
		try {
			await this.store.appendGone(entry);
			// Appends past twice the memory: write back only what is remembered, so the file stays bounded.
			if (++this.#goneLines > 2 * GONE_MEMORY) {
				await this.store.rewriteGone([...this.#gone.values()]);
				this.#goneLines = this.#gone.size;
			}
		} catch (error) {
			this.#log.warn({vm: vm.id, err: error}, 'could not remember the deleted VM on disk');
		}
	}

	private keepGone(entry: GoneRecord): void {
		this.#gone.delete(entry.vm.id);
		this.#gone.set(entry.vm.id, entry);
		if (this.#gone.size > GONE_MEMORY) {
			const oldest = this.#gone.keys().next().value;
			if (oldest !== undefined) {
				this.#gone.delete(oldest);
			}
		}
	}

	/** Keeps every console log and the dnsmasq log under their caps (a guest can write without end). */
	private async capLogs(vms: ReadonlyArray<ManagedVm<VmOutcome>>): Promise<void> {
		const consoleMax = this.config.consoleLogMaxBytes ?? DEFAULT_CONSOLE_LOG_MAX_BYTES;
		const logs = [...vms.map(vm => ({id: vm.id, path: this.store.paths(vm.id).console, maxBytes: consoleMax})), {id: undefined, path: this.#network.paths.log, maxBytes: this.config.dnsmasqLogMaxBytes ?? DEFAULT_DNSMASQ_LOG_MAX_BYTES}];
		for (const {id, path, maxBytes} of logs) {
			// A VM deleted meanwhile: its directory is on its way out.
			if (id !== undefined && !this.#vms.has(id)) {
				continue;
			}

			const result = await rotateLog(path, maxBytes).catch((error: unknown) => {
				this.#log.warn({err: error, path}, 'could not rotate a log');
			});
			if (result?.isRotated) {
				this.#log.debug({path, sizeBefore: result.sizeBefore, kept: result.keptBytes}, 'log rotated');
			}
		}
	}

	/** Joins the state dir with the running processes: adopts, finds VMs to boot again, finishes cut-short stops and deletes. */
	private async reconcileState(options: {readonly isStartup: boolean}): Promise<void> {
		if (this.#isReconciling) {
			return;
		}

		this.#isReconciling = true;
		try {
			if (!options.isStartup) {
				// Between start-ups only watch adopted VMs, which are not our children. A child's own exit
				// event brings its exit status; polling it here could see its zombie first and lose that.
				this.#lifecycle.pollAdopted();

				const vms = this.#vms.values();
				const records = vms.map(vm => vm.record);
				void this.capLogs(vms);
				void this.#network.refreshPublic(records).catch((error: unknown) => this.#log.debug({err: error}, 'public addresses not read'));
				void this.#network.syncPeers(this.peers());
				return;
			}

			const observed = discoverVms(await this.#runtime.listProcesses(), this.store.root);

			for (const entry of await this.store.readGone(GONE_MEMORY)) {
				this.keepGone(entry);
			}

			this.#goneLines = this.#gone.size;

			const {records, unreadable} = await this.store.readAll();
			for (const record of records) {
				this.#vms.add(new ManagedVm<VmOutcome>(record));
			}

			for (const action of reconcile(records, unreadable, observed)) {
				const vm = this.#vms.get(action.id);
				switch (action.kind) {
					case 'adopt': {
						if (!vm) {
							break;
						}

						this.#lifecycle.adopt(vm, {pid: action.pid, ...(action.startTime === undefined ? {} : {startTime: action.startTime})});
						this.#consoles.watch(action.id, this.store.paths(action.id), {isNewProcess: false});
						if (vm.life.phase === 'booting') {
							vm.life = {...vm.life, phase: 'running'};
							vm.record = {...vm.record, startedAt: Date.now()};
							await this.#lifecycle.persist(vm);
						}

						this.#log.info({vm: action.id, pid: action.pid, startTime: action.startTime}, 'adopted running VM');
						break;
					}

					case 'recover': {
						if (vm) {
							vm.life = {...vm.life, phase: 'booting'};
							this.#toRecover.push(action.id);
						}

						break;
					}

					case 'mark-stopped': {
						if (vm) {
							vm.life = {...vm.life, phase: 'stopped', desired: 'stopped'};
							vm.record = {...vm.record, exit: vm.record.exit ?? 'process ended while the agent was down'};
							await this.#lifecycle.persist(vm);
						}

						break;
					}

					case 'kill': {
						this.#runtime.signal(action, 'SIGKILL');
						await this.#lifecycle.waitForExit(action, 5000);
						if (action.then === 'remove') {
							await this.#lifecycle.discard(action.id);
						} else if (vm && action.then === 'stopped') {
							vm.life = {...vm.life, phase: 'stopped', desired: 'stopped'};
							vm.record = {...vm.record, exit: 'killed (its stop was cut short)'};
							await this.#lifecycle.persist(vm);
						}

						this.#log.warn({vm: action.id, reason: action.reason}, 'killed an unmanaged VM process');
						break;
					}

					case 'remove': {
						await this.#lifecycle.discard(action.id);
						this.#log.warn({vm: action.id, reason: action.reason}, 'removed leftovers');
						break;
					}
				}
			}

			// Only VMs that run keep a TAP: a stopped or crashed one's is a leftover, as is one whose VM
			// is gone. VMs to boot again keep their address reservation (their TAP is made anew).
			const live = this.#vms.values().filter(vm => vm.process !== undefined);
			const removed = await this.#network.removeOrphanTaps(new Set(live.map(vm => vm.id)));
			if (removed.length > 0) {
				this.#log.info({taps: removed}, 'deleted leftover TAPs');
			}

			const recovering = new Set(this.#toRecover);
			await this.#network.resume(this.#vms.values().filter(vm => vm.process !== undefined || recovering.has(vm.id)).map(vm => vm.record));
		} catch (error) {
			this.#log.error({err: error}, 'reconcile failed');
		} finally {
			this.#isReconciling = false;
		}
	}
}


const MIB = 1024 * 1024;

/** Whether a VM in this phase holds its memory and vCPUs (it runs, or is on its way up or down). */
function isHolding(phase: ManagedVm['life']['phase']): boolean {
	return phase !== 'stopped' && phase !== 'crashed' && phase !== 'deleted';
}
