/**
 * The group controller (README, "Groups"): any agent runs one (`--controller`, on by default), the
 * broker elects which one acts (`source/broker/leader.ts`). The leader reads the group specs from
 * the groups stream, and in rounds (every `roundMs`, or at once after a VM or host event) lists
 * the fleet, judges each member's health and carries out what `group-reconcile.ts` decides, with
 * the same requests an operator sends (`vm.start` with the member's token, `vm.delete`).
 *
 * It keeps no state of its own that matters: a controller elected after a failover starts from
 * the stream and a list round, and its starts carry the tokens its predecessor's did.
 */
import type {Logger} from 'pino';
import {KloudClient} from '../source/broker/client.js';
import {BrokerConnection, urlUser, type TlsOptions} from '../source/broker/connection.js';
import {GroupStore} from '../source/broker/group-store.js';
import {Leadership} from '../source/broker/leader.js';
import {parseMemberToken, topology, type HostSnapshot, type StoredGroup, type Vm} from '../source/protocol/index.js';
import {memberHealth, orphanActions, reconcileGroup, type GroupAction, type HostRoom, type ObservedMember} from './group-reconcile.js';
import {decideScaling, sampleGroupLoad, type LoadSample} from './group-scaling.js';

export type ControllerOptions = {
	readonly url: string;
	readonly namespace: string;
	readonly hostId: string;
	readonly agentUsers?: readonly string[];
	/** A `--tenants` fleet: only records written by the agents' users and these admins count. */
	readonly tenants?: {readonly admins: readonly string[]};
	readonly tls?: TlsOptions;
	readonly log: Logger;
	/** Time between rounds while groups exist (events start one sooner). */
	readonly roundMs?: number;
	/** AMQP heartbeat of the election's connection: a hung process loses the lead after ≈ 3 ×. */
	readonly heartbeatSeconds?: number;
};

/** Rounds while no group exists: only to find members of deleted groups. */
const IDLE_ROUND_MS = 30_000;
/** The pause before a round asked for by an event that came during the last one (events come in bursts). */
const WOKEN_ROUND_MS = 100;
/** A round that has not finished after this long means a stuck leader: it steps down. */
const STUCK_ROUND_MS = 90_000;
/** How often a member's console is read for its health check. */
const CONSOLE_POLL_MS = 3000;
const CONSOLE_BYTES = 8192;
/** How often a member's `tcp:PORT` check connects, and how long a connect may take. */
const PROBE_POLL_MS = 3000;
const PROBE_CONNECT_MS = 2000;
/** A member's load older than this (its host's sampler stalled) is not counted. */
const STALE_LOAD_MS = 15_000;

type ConsoleState = {size: number; lastOkAt: number | undefined; polledAt: number};
type ProbeState = {lastOkAt: number | undefined; polledAt: number; error?: string};

export class GroupController {
	static async start(options: ControllerOptions): Promise<GroupController> {
		const topo = topology(options.namespace);
		const {tenants} = options;
		const writers = new Set([...(options.agentUsers ?? [urlUser(options.url)]), ...(tenants?.admins ?? [])]);
		const store = new GroupStore(topo, tenants ? {isTrustedWriter: user => user !== null && writers.has(user)} : {});
		const leadership = new Leadership({topo, candidate: options.hostId, tickMs: 2000});
		const client = await KloudClient.connect({
			url: options.url,
			namespace: options.namespace,
			connectionName: `kloud-controller@${options.hostId}`,
			sender: `kloud-controller@${options.hostId}`,
			reconnect: true,
			watchEvents: true,
			...(options.agentUsers === undefined ? {} : {agentUsers: options.agentUsers}),
			...(options.tls === undefined ? {} : {tls: options.tls}),
		});
		const controller = new GroupController(options, store, leadership, client);
		const connection = await BrokerConnection.open({
			url: options.url,
			connectionName: `kloud-election@${options.hostId}`,
			reconnect: true,
			heartbeatSeconds: options.heartbeatSeconds ?? 2,
			...(options.tls === undefined ? {} : {tls: options.tls}),
			setup: async context => {
				await store.setup(context);
				await leadership.setup(context);
			},
		});
		controller.#connection = connection;
		connection.on('state', state => {
			if (state.status !== 'connected') {
				leadership.connectionLost();
			}
		});
		return controller;
	}

	#connection: BrokerConnection | undefined;
	#syncedEpoch = -1;
	#wake: (() => void) | undefined;
	/** An event came while a round ran: the next round starts soon instead of after the full wait. */
	#isWakePending = false;
	#isStopped = false;
	#loop: Promise<void> | undefined;
	#roundStartedAt: number | undefined;
	/** When each host's heartbeat was last heard (also while a follower: a new leader knows who was up). */
	readonly #heard = new Map<string, number>();
	/** The last reason each blocked slot was logged with: logged again only when it changes. */
	readonly #blocked = new Map<string, string>();
	readonly #watchdog: NodeJS.Timeout;
	/** The last snapshot of each host and when it answered: a silent host's members are judged from it. */
	readonly #hosts = new Map<string, {snapshot: HostSnapshot; seenAt: number}>();
	readonly #consoles = new Map<string, ConsoleState>();
	readonly #probes = new Map<string, ProbeState>();
	/** Each scaling group's load samples (`name:uid`), one per round, and when this leader began watching. */
	readonly #loadSamples = new Map<string, LoadSample[]>();
	#electedAt = 0;
	/** The version each group's last `group.scaled` was decided on: no second decision until it is read back. */
	readonly #scaledFrom = new Map<string, number>();
	/** The last reason each group held its size: logged again only when it changes. */
	readonly #scalingHeld = new Map<string, string>();
	/** Tokens whose start answered with a deleted VM (see `GroupReconcileInput.burned`). */
	readonly #burned = new Set<string>();
	readonly #options: ControllerOptions;
	readonly #store: GroupStore;
	readonly #leadership: Leadership;
	readonly #client: KloudClient;

	private constructor(options: ControllerOptions, store: GroupStore, leadership: Leadership, client: KloudClient) {
		this.#options = options;
		this.#store = store;
		this.#leadership = leadership;
		this.#client = client;
		leadership.on('elected', () => {
			options.log.info({controller: options.hostId}, 'elected group controller');
			// A new leader measures afresh: no decision rests on samples from an earlier term.
			this.#electedAt = Date.now();
			this.#loadSamples.clear();
			this.#loop ??= this.run().finally(() => {
				this.#loop = undefined;
			});
		});
		leadership.on('deposed', () => {
			options.log.info({controller: options.hostId}, 'no longer the group controller');
			this.wakeUp();
		});
		store.onChange(() => this.wakeUp());
		client.onEvent(event => {
			if (event.type === 'host.heartbeat') {
				this.#heard.set(event.body.id, Date.now());
			}

			if (event.type === 'vm.crashed' || event.type === 'vm.deleted' || event.type === 'vm.stopped' || event.type === 'host.down' || event.type === 'vm.started') {
				this.wakeUp();
			}
		});
		this.#watchdog = setInterval(() => {
			if (this.#leadership.isLeader && this.#roundStartedAt !== undefined && Date.now() - this.#roundStartedAt > STUCK_ROUND_MS) {
				options.log.warn('a group round is stuck: stepping down as controller');
				this.#roundStartedAt = undefined;
				void this.#leadership.stepDown();
			}
		}, 1000);
		this.#watchdog.unref();
	}

	get isLeader(): boolean {
		return this.#leadership.isLeader;
	}

	async stop(): Promise<void> {
		this.#isStopped = true;
		clearInterval(this.#watchdog);
		this.#leadership.close();
		this.wakeUp();
		await this.#connection?.close();
		await this.#client.close();
		await this.#loop?.catch(() => {});
	}

	private async run(): Promise<void> {
		while (this.#leadership.isLeader && !this.#isStopped) {
			this.#roundStartedAt = Date.now();
			this.#isWakePending = false;
			let isFailed = false;
			try {
				await this.round();
			} catch (error) {
				isFailed = true;
				this.#options.log.warn({err: error}, 'group round failed');
			}

			this.#roundStartedAt = undefined;
			// A failed round (e.g. elected while its connection moved to another broker node) is tried
			// again soon, not after the idle pause: it has not read the specs yet.
			const waitMs = this.#isWakePending ? WOKEN_ROUND_MS : isFailed || this.#store.groups.size > 0 ? (this.#options.roundMs ?? 2000) : IDLE_ROUND_MS;
			await new Promise<void>(resolve => {
				const timer = setTimeout(resolve, waitMs);
				this.#wake = () => {
					clearTimeout(timer);
					this.#wake = undefined;
					resolve();
				};
			});
		}
	}

	/** Starts the next round now, or, while one runs, soon after it (an event it may not have seen). */
	private wakeUp(): void {
		if (this.#wake) {
			this.#wake();
		} else {
			this.#isWakePending = true;
		}
	}

	/** One reconcile round over every group. */
	private async round(): Promise<void> {
		const connection = this.#connection;
		if (!connection) {
			return;
		}

		// Act only on a complete view of the specs: read to the stream's end once per connection.
		if (this.#syncedEpoch !== this.#store.epoch) {
			const epoch = this.#store.epoch;
			await this.#store.sync(connection, 10_000);
			this.#syncedEpoch = epoch;
		}

		const epoch = this.#store.epoch;
		const groups = this.#store.groups;
		const deleted = this.#store.deleted;
		const now = Date.now();
		const round = await this.#client.list({timeoutMs: 2000});
		if (!this.#leadership.isLeader) {
			return;
		}

		for (const snapshot of round.replies) {
			this.#hosts.set(snapshot.host.id, {snapshot, seenAt: now});
		}

		const answered = new Set(round.replies.map(snapshot => snapshot.host.id));
		const rooms: HostRoom[] = round.replies.map(snapshot => ({
			id: snapshot.host.id,
			free: Math.max(0, snapshot.host.maxVms - snapshot.host.vmCount),
			images: snapshot.host.images,
			isCordoned: snapshot.host.cordoned === true,
		}));
		const observed: Array<{vm: Vm; silentMs: number}> = [];
		for (const [id, {snapshot, seenAt}] of this.#hosts) {
			for (const vm of snapshot.vms) {
				observed.push({vm, silentMs: answered.has(id) ? 0 : now - seenAt});
			}
		}

		const actions: GroupAction[] = orphanActions(
			observed.filter(entry => entry.silentMs === 0).map(entry => entry.vm),
			groups,
			deleted,
		);
		// Hosts heard from lately whose members this controller never saw (it was elected since they
		// went silent) may hold members: empty slots wait for them, up to the host grace.
		const unseen = [...this.#heard].filter(([id]) => !answered.has(id) && !this.#hosts.has(id));
		const scalings: Array<{group: StoredGroup; members: ObservedMember[]}> = [];
		for (const group of groups.values()) {
			const members = await this.observeMembers(group, observed, now);
			const unseenHosts = unseen.filter(([, heardAt]) => now - heardAt <= group.spec.hostGraceSeconds * 1000).map(([id]) => id);
			actions.push(...reconcileGroup({group, members, hosts: rooms, burned: this.#burned, ...(unseenHosts.length > 0 ? {unseenHosts} : {})}));
			if (group.spec.scaleOn) {
				scalings.push({group, members});
			}
		}

		// Deposed meanwhile, or the specs are being read again (a new connection): act on nothing.
		if (!this.#leadership.isLeader || this.#store.epoch !== epoch || this.#syncedEpoch !== epoch) {
			return;
		}

		await Promise.all(actions.map(async action => this.carryOut(action, groups)));
		for (const {group, members} of scalings) {
			await this.scaleOnLoad(group, members, now, connection);
		}

		this.forgetScaling(groups);
		this.forgetGone(observed.map(entry => entry.vm.id));
		this.#options.log.debug({groups: groups.size, vms: observed.length, hosts: answered.size, actions: actions.length}, 'group round');
	}

	private async observeMembers(group: StoredGroup, observed: ReadonlyArray<{vm: Vm; silentMs: number}>, now: number): Promise<ObservedMember[]> {
		const {spec} = group;
		const mine = observed.filter(({vm}) => {
			const tag = parseMemberToken(vm.clientToken);
			return tag?.group === spec.name && tag.uid === spec.uid && vm.state !== 'deleting';
		});
		// Checks run side by side: a round over many members costs one check's time.
		return Promise.all(
			mine.map(async ({vm, silentMs}) => {
				const tag = parseMemberToken(vm.clientToken)!;
				const isHostLost = silentMs > spec.hostGraceSeconds * 1000;
				const isCheckable = silentMs === 0 && vm.state === 'running';
				const {health: check} = spec;
				const lastOkAt =
					check.kind === 'console'
						? (isCheckable ? await this.pollConsole(vm, check.pattern, now) : this.#consoles.get(vm.id))?.lastOkAt
						: check.kind === 'tcp'
							? (isCheckable ? await this.pollProbe(vm, check.port, now) : this.#probes.get(vm.id))?.lastOkAt
							: undefined;
				const health = memberHealth({vm, now, isHostLost, silentMs, ...(check.kind === 'none' ? {} : {check: {lastOkAt, graceMs: spec.healthGraceSeconds * 1000, failMs: (spec.unhealthyAfterSeconds ?? spec.healthGraceSeconds) * 1000}})});
				return {vm, tag, health};
			}),
		);
	}

	/** Connects to a member's address and port through its host; a connection taken is its latest sign of health. */
	private async pollProbe(vm: Vm, port: number, now: number): Promise<ProbeState | undefined> {
		const state = this.#probes.get(vm.id);
		if (state && now - state.polledAt < PROBE_POLL_MS) {
			return state;
		}

		try {
			const result = await this.#client.probe(vm.id, port, {host: vm.host, connectTimeoutMs: PROBE_CONNECT_MS, timeoutMs: PROBE_CONNECT_MS + 2000});
			const next: ProbeState = {lastOkAt: result.isOpen ? now : state?.lastOkAt, polledAt: now, ...(result.error === undefined ? {} : {error: result.error})};
			if (!result.isOpen && result.error !== state?.error) {
				this.#options.log.info({vm: vm.id, host: vm.host, port, error: result.error}, 'tcp health check failed');
			}

			this.#probes.set(vm.id, next);
			return next;
		} catch (error) {
			this.#options.log.debug({err: error, vm: vm.id}, 'tcp health check could not ask the host');
			return state;
		}
	}

	/** Reads the new part of a member's console; a matching line there is its latest sign of health. */
	private async pollConsole(vm: Vm, pattern: string, now: number): Promise<ConsoleState | undefined> {
		const state = this.#consoles.get(vm.id);
		if (state && now - state.polledAt < CONSOLE_POLL_MS) {
			return state;
		}

		try {
			const tail = await this.#client.console(vm.id, {host: vm.host, bytes: CONSOLE_BYTES, timeoutMs: 2000});
			const grown = state ? tail.sizeBytes - state.size : tail.data.length;
			// A shrunk log was rotated: all of the tail is new.
			const fresh = grown < 0 ? tail.data : tail.data.slice(Math.max(0, tail.data.length - grown));
			const isMatch = grown !== 0 && new RegExp(pattern, 'm').test(fresh);
			const next = {size: tail.sizeBytes, lastOkAt: isMatch ? now : state?.lastOkAt, polledAt: now};
			this.#consoles.set(vm.id, next);
			return next;
		} catch (error) {
			this.#options.log.debug({err: error, vm: vm.id}, 'console health check could not read the console');
			return state;
		}
	}

	private async carryOut(action: GroupAction, groups: ReadonlyMap<string, StoredGroup>): Promise<void> {
		const {log} = this.#options;
		const slotKey = `${action.group}/${action.kind === 'delete' ? '' : action.slot}`;
		if (action.kind === 'blocked') {
			if (this.#blocked.get(slotKey) !== action.reason) {
				this.#blocked.set(slotKey, action.reason);
				log.warn({group: action.group, slot: action.slot}, action.reason);
			}

			return;
		}

		this.#blocked.delete(slotKey);

		if (action.kind === 'delete') {
			log.info({group: action.group, vm: action.vmId, host: action.host, reason: action.reason}, 'deleting a group member');
			await this.#client.delete(action.vmId, {host: action.host, timeoutMs: 15_000}).catch((error: unknown) => {
				log.warn({err: error, vm: action.vmId}, 'could not delete a group member');
			});
			return;
		}

		const {spec} = groups.get(action.group)!;
		log.info({group: action.group, slot: action.slot, host: action.host, token: action.token, reason: action.reason}, 'starting a group member');
		try {
			const vm = await this.#client.start(
				{
					image: spec.image,
					host: action.host,
					clientToken: action.token,
					restart: spec.restart,
					...(spec.memoryMb === undefined ? {} : {memoryMb: spec.memoryMb}),
					...(spec.cpus === undefined ? {} : {cpus: spec.cpus}),
					...(spec.network === undefined ? {} : {network: spec.network}),
					...(spec.userData === undefined ? {} : {userData: spec.userData}),
					...(spec.sshKeys === undefined ? {} : {sshKeys: spec.sshKeys}),
				},
				{timeoutMs: 30_000},
			);
			if (vm.state === 'deleted') {
				// This token's VM was made and deleted before: the slot needs the next generation.
				this.#burned.add(action.token);
				this.wakeUp();
			}

			log.info({group: action.group, vm: vm.id, host: vm.host, state: vm.state}, 'group member started');
		} catch (error) {
			log.warn({err: error, group: action.group, slot: action.slot, host: action.host}, 'could not start a group member');
		}
	}

	/**
	 * Samples a scaling group's load (its warm, healthy running members' CPU) and, when
	 * `decideScaling` says so, writes the new size to the stream as a `group.scaled` record based on
	 * the version it read: a spec an operator changed meanwhile wins.
	 */
	private async scaleOnLoad(group: StoredGroup, members: readonly ObservedMember[], now: number, connection: BrokerConnection): Promise<void> {
		const {spec} = group;
		const scaleOn = spec.scaleOn!;
		const key = `${spec.name}:${spec.uid}`;
		if (this.#scaledFrom.get(key) === group.version) {
			return;
		}

		const sample = sampleGroupLoad(
			members.map(({vm, health}) => ({
				cpuPercent: vm.load && now - vm.load.sampledAt <= STALE_LOAD_MS ? vm.load.cpuPercent : undefined,
				uptimeSeconds: vm.uptimeSeconds,
				isCounted: vm.state === 'running' && health === 'healthy',
			})),
			{now, warmupSeconds: scaleOn.warmupSeconds},
		);
		const samples = [...(this.#loadSamples.get(key) ?? []), ...(sample ? [sample] : [])].filter(entry => now - entry.at <= 4 * scaleOn.windowSeconds * 1000);
		this.#loadSamples.set(key, samples);
		const decision = decideScaling({
			scaleOn,
			size: spec.size,
			min: spec.min,
			max: spec.max,
			samples,
			now,
			since: Math.max(group.ts, this.#electedAt),
			lastScaledAt: group.lastScaling?.at,
		});
		if (decision.kind === 'hold') {
			if (this.#scalingHeld.get(key) !== decision.reason) {
				this.#scalingHeld.set(key, decision.reason);
				this.#options.log.debug({group: spec.name, reason: decision.reason}, 'group size held');
			}

			return;
		}

		this.#scalingHeld.delete(key);
		const action = {from: spec.size, to: decision.to, cpuPercent: decision.cpuPercent, members: decision.members, windowSeconds: scaleOn.windowSeconds, reason: decision.reason};
		this.#options.log.info({group: spec.name, ...action}, 'scaling a group on load');
		try {
			await this.#store.append(connection, {kind: 'group.scaled', name: spec.name, uid: spec.uid, basedOn: group.version, action});
			this.#scaledFrom.set(key, group.version);
		} catch (error) {
			this.#options.log.warn({err: error, group: spec.name}, 'could not write a scaling action');
		}
	}

	private forgetScaling(groups: ReadonlyMap<string, StoredGroup>): void {
		const live = new Set([...groups.values()].filter(group => group.spec.scaleOn).map(group => `${group.spec.name}:${group.spec.uid}`));
		for (const key of this.#loadSamples.keys()) {
			if (!live.has(key)) {
				this.#loadSamples.delete(key);
				this.#scalingHeld.delete(key);
				this.#scaledFrom.delete(key);
			}
		}
	}

	private forgetGone(liveIds: readonly string[]): void {
		const live = new Set(liveIds);
		for (const checks of [this.#consoles, this.#probes]) {
			for (const id of checks.keys()) {
				if (!live.has(id)) {
					checks.delete(id);
				}
			}
		}
	}
}
