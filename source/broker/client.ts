/**
 * What the CLI and the TUI use to talk to the fleet: list and images rounds (scatter-gather that
 * ends as soon as every live host has answered), start, and stop, kill, boot, reboot and delete
 * routed to the right host.
 */
import {randomUUID} from 'node:crypto';
import type {ConsumeMessage} from 'amqplib';
import {
	ALL_HOSTS_KEY,
	MAX_ROSTER_HOSTS,
	REPEAT_HEADER,
	START_KEY,
	encode,
	hostsWithRoomFor,
	isTrustedEvent,
	makeRequest,
	oneCopyPerVm,
	parseEvent,
	parseReplyValue,
	topology,
	type ConsoleAlive,
	type ConsoleAttachBody,
	type ConsoleAttached,
	type ConsoleTail,
	type ErrorCode,
	type HostImages,
	type HostSnapshot,
	type KloudEvent,
	type Reply,
	type ReplyValue,
	type RequestDraft,
	type RequestType,
	type StartBody,
	type Topology,
	type Vm,
} from '../protocol/index.js';
import {BrokerConnection, BrokerUnavailableError, urlUser, type ConnectionState, type SetupContext, type TlsOptions} from './connection.js';
import {HostRoster} from './host-roster.js';
import type {VmListCache} from './list-cache.js';
import {checkShared, declareShared, declareStartQueue, TopologyError} from './topology.js';
import {ConnectionLostError, NoRouteError, RequestRefusedError, RequestTimeoutError, Rpc} from './rpc.js';

/** A retry needs at least this long to be worth sending. */
const MIN_ATTEMPT_MS = 50;

/** The list round that finds hosts with room, when the start queue refused a start, takes at most this long. */
const DIRECT_START_LIST_MS = 2000;

/**
 * How long a start may wait in the work queue for a host with capacity: the requester's remaining
 * time less a margin for the start itself (up to 5 s), so an unclaimed start expires, is
 * dead-lettered and answered with "no host had capacity" while the requester still listens.
 */
export function startQueueTtl(remainingMs: number): number {
	return Math.max(1, Math.round(remainingMs - Math.min(5000, remainingMs / 2)));
}

export type ClientErrorCode = ErrorCode | 'timeout' | 'host_unreachable' | 'no_hosts' | 'broker';

/** A request that did not succeed, with a code scripts can branch on and a one-line reason. */
export class KloudRequestError extends Error {
	override name = 'KloudRequestError';
	readonly code: ClientErrorCode;

	constructor(code: ClientErrorCode, reason: string, options?: ErrorOptions) {
		super(reason, options);
		this.code = code;
	}
}

export type ClientOptions = {
	readonly url: string;
	readonly namespace: string;
	readonly connectionName: string;
	/** Sender id stamped on requests (e.g. `kloud-tui@alice`). */
	readonly sender: string;
	readonly reconnect: boolean;
	/** Subscribe to heartbeats and VM events (the TUI); a one-shot CLI relies on the agents' rosters. */
	readonly watchEvents?: boolean;
	/**
	 * RabbitMQ users whose events count (the agents'): others' are dropped and counted in
	 * `droppedEvents`. Default: this connection's own user (a tenant must name the agents' user).
	 */
	readonly agentUsers?: readonly string[];
	readonly heartbeatSeconds?: number;
	/** With `reconnect`: still fail at once when the first connection cannot be made (a CLI run). */
	readonly failFast?: boolean;
	/** CA and client certificate for `amqps://` URLs. */
	readonly tls?: TlsOptions;
};

export type RoundResult<T> = {
	readonly replies: readonly T[];
	/** Hosts believed live that did not answer before the timeout. */
	readonly missing: readonly string[];
	readonly durationMs: number;
};

export type ListRound = RoundResult<HostSnapshot> & {
	/** Hosts that answered that their VM list had not changed (`list` with a cache): filled in from it. */
	readonly unchanged: readonly string[];
};

export type StopOptions = {
	readonly kill?: boolean;
	readonly host?: string;
	readonly graceSeconds?: number;
	readonly timeoutMs: number;
};

export class KloudClient {
	static async connect(options: ClientOptions): Promise<KloudClient> {
		const topo = topology(options.namespace);
		const client = new KloudClient(options, topo);
		client.#rpc = new Rpc(() => client.connection);
		const connection = await BrokerConnection.open({
			url: options.url,
			connectionName: options.connectionName,
			reconnect: options.reconnect,
			heartbeatSeconds: options.heartbeatSeconds,
			...(options.tls === undefined ? {} : {tls: options.tls}),
			...(options.reconnect && options.failFast ? {firstConnect: 'fail' as const} : {}),
			setup: async context => {
				// Independent round trips, on channels of their own: in parallel.
				await Promise.all([declareOrCheckShared(context, topo), client.rpc.setup(context)]);
				if (options.watchEvents) {
					await watchEvents(context, topo, urlUser(options.url), message => client.onEventMessage(message));
				}
			},
		}).catch((error: unknown) => {
			throw new KloudRequestError('broker', (error as Error).message, {cause: error});
		});
		return client.attach(connection);
	}

	readonly roster = new HostRoster();
	readonly topo: Topology;
	readonly #options: ClientOptions;
	readonly #eventListeners = new Set<(event: KloudEvent) => void>();
	#connection: BrokerConnection | undefined;
	#rpc: Rpc | undefined;
	readonly #agentUsers: ReadonlySet<string>;
	#droppedEvents = 0;

	private constructor(options: ClientOptions, topo: Topology) {
		this.#options = options;
		this.topo = topo;
		this.#agentUsers = new Set(options.agentUsers && options.agentUsers.length > 0 ? options.agentUsers : [urlUser(options.url)]);
	}

	/** Events dropped because no agent user published them (forged, or without a user id). */
	get droppedEvents(): number {
		return this.#droppedEvents;
	}

	get connection(): BrokerConnection {
		return this.#connection!;
	}

	private get rpc(): Rpc {
		return this.#rpc!;
	}

	onEvent(listener: (event: KloudEvent) => void): () => void {
		this.#eventListeners.add(listener);
		return () => this.#eventListeners.delete(listener);
	}

	onConnectionState(listener: (state: ConnectionState) => void): () => void {
		this.connection.on('state', listener);
		return () => this.connection.off('state', listener);
	}

	/**
	 * One list round: every live host's snapshot, and which live hosts stayed silent. With a cache
	 * (kept by the caller from round to round) hosts whose VM list did not change answer without it,
	 * and the snapshot is filled in from the cache (those hosts are in `unchanged`).
	 */
	async list(options: {readonly timeoutMs: number; readonly cache?: VmListCache}): Promise<ListRound> {
		const {cache} = options;
		const known = cache?.known() ?? {};
		const unchanged = new Set<string>();
		const round = await this.broadcast('vm.list', {type: 'vm.list', body: Object.keys(known).length > 0 ? {known} : {}}, options.timeoutMs, value => value.roster, value => {
			const filled = cache ? cache.resolve(value, Date.now()) : value;
			if (filled && value.vmsUnchanged) {
				unchanged.add(value.host.id);
			}

			return filled;
		});
		cache?.retain(new Set([...round.replies.map(snapshot => snapshot.host.id), ...round.missing]));
		return {...round, unchanged: [...unchanged].sort()};
	}

	async images(options: {readonly timeoutMs: number}): Promise<RoundResult<HostImages>> {
		return this.broadcast('images.list', {type: 'images.list', body: {}}, options.timeoutMs, value => value.roster);
	}

	/**
	 * Starts a VM on the named host, or on whichever host with capacity takes it from the work queue.
	 * Every start carries a client token (a random one unless the body has one): after a lost
	 * connection or an unconfirmed publish it is sent again with the same token, and the agent
	 * that has (or is making) the VM for that token answers with it instead of making another.
	 */
	async start(body: StartBody, options: {readonly timeoutMs: number}): Promise<Vm> {
		const withToken: StartBody = {...body, clientToken: body.clientToken ?? randomUUID()};
		const draft: RequestDraft = {type: 'vm.start', body: withToken};
		// A token the caller chose may have been sent before (that is what it is for).
		const isRepeat = body.clientToken !== undefined;
		if (body.host) {
			return this.ask('vm.start', draft, this.topo.commandExchange, this.topo.hostKey(body.host), options.timeoutMs, {host: body.host, isRepeat});
		}

		const deadline = Date.now() + options.timeoutMs;
		try {
			return await this.ask('vm.start', draft, this.topo.commandExchange, START_KEY, options.timeoutMs, {queueTtl: startQueueTtl, isRepeat, isRefusalFinal: true});
		} catch (error) {
			if (!(error instanceof KloudRequestError && error.cause instanceof RequestRefusedError)) {
				throw error;
			}

			return this.startOnHostWithRoom(withToken, deadline, error);
		}
	}

	/**
	 * The start queue refused the start (full: `reject-publish`, as while a tenant floods it): the
	 * hosts with room are asked directly, most room first. A host queue serves each sender its own
	 * share, so another tenant's flood of the shared queue does not hold this start up. The start
	 * keeps its token and goes as a repeat (the host looks the token up across the fleet first), so
	 * it never makes a second VM.
	 */
	private async startOnHostWithRoom(body: StartBody, deadline: number, refused: KloudRequestError): Promise<Vm> {
		const round = await this.list({timeoutMs: Math.max(1, Math.min(DIRECT_START_LIST_MS, deadline - Date.now()))});
		const hosts = hostsWithRoomFor(round.replies.map(reply => reply.host), body);
		const draft: RequestDraft = {type: 'vm.start', body};
		let last: KloudRequestError | undefined;
		for (const host of hosts) {
			if (deadline - Date.now() < MIN_ATTEMPT_MS) {
				break;
			}

			try {
				return await this.ask('vm.start', draft, this.topo.commandExchange, this.topo.hostKey(host), deadline - Date.now(), {host, isRepeat: true});
			} catch (error) {
				// This host cannot take it after all: the next one may.
				if (!(error instanceof KloudRequestError && (error.code === 'no_capacity' || error.code === 'busy'))) {
					throw error;
				}

				last = error;
			}
		}

		throw new KloudRequestError('no_capacity', `${refused.message}; ${last ? `no host took it directly (${last.message})` : `and no host has room for it (${hosts.length} of ${round.replies.length} answering hosts)`}`, {cause: refused});
	}

	/** Graceful stop (or kill) sent only to the VM's owner; finds the owner (`findOwner`) if not given. */
	async stop(vmId: string, options: StopOptions): Promise<Vm> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		const draft: RequestDraft = options.kill
			? {type: 'vm.kill', body: {vmId}}
			: {type: 'vm.stop', body: options.graceSeconds === undefined ? {vmId} : {vmId, graceSeconds: options.graceSeconds}};
		const graceMs = options.kill ? 0 : (options.graceSeconds ?? 30) * 1000;
		return this.ask(draft.type as 'vm.stop' | 'vm.kill', draft, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs + graceMs, {host});
	}

	/** Boots a stopped (or crashed) VM again on its host: same id, MAC, disk and seed. Finds the owner if not given. */
	async boot(vmId: string, options: {readonly host?: string; readonly timeoutMs: number}): Promise<Vm> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		return this.ask('vm.boot', {type: 'vm.boot', body: {vmId}}, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	/** Reboots a running VM: an ACPI power-off and boot again, or with `hard` a `system_reset`. */
	async reboot(vmId: string, options: {readonly host?: string; readonly hard?: boolean; readonly timeoutMs: number}): Promise<Vm> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		const draft: RequestDraft = {type: 'vm.reboot', body: options.hard ? {vmId, hard: true} : {vmId}};
		return this.ask('vm.reboot', draft, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	/** Deletes a VM (stopped first if it runs: `graceSeconds` to power off, default 0): its disk, seed, TAP, lease and record go. */
	async delete(vmId: string, options: {readonly host?: string; readonly graceSeconds?: number; readonly timeoutMs: number}): Promise<Vm> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		const draft: RequestDraft = {type: 'vm.delete', body: options.graceSeconds === undefined ? {vmId} : {vmId, graceSeconds: options.graceSeconds}};
		return this.ask('vm.delete', draft, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs + (options.graceSeconds ?? 0) * 1000, {host});
	}

	/** The tail of a VM's serial console, fetched from its owner. */
	async console(vmId: string, options: {readonly host?: string; readonly bytes?: number; readonly timeoutMs: number}): Promise<ConsoleTail> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		const draft: RequestDraft = {type: 'vm.console', body: options.bytes === undefined ? {vmId} : {vmId, bytes: options.bytes}};
		return this.ask('vm.console', draft, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	/** Opens an interactive console session on a VM's owner (see `console-stream.ts`, which drives it). */
	async consoleAttach(vmId: string, body: Omit<ConsoleAttachBody, 'vmId'>, options: {readonly host?: string; readonly timeoutMs: number}): Promise<ConsoleAttached> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		return this.ask('vm.console.attach', {type: 'vm.console.attach', body: {vmId, ...body}}, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	/** A console session's keepalive, answered: whether it is still open and holds the writer's seat. */
	async consoleKeepalive(host: string, session: string, options: {readonly timeoutMs: number}): Promise<ConsoleAlive> {
		return this.ask('vm.console.input', {type: 'vm.console.input', body: {session}}, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	async consoleDetach(host: string, session: string, options: {readonly timeoutMs: number}): Promise<void> {
		await this.ask('vm.console.detach', {type: 'vm.console.detach', body: {session}}, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	/** Sends input to a console session without waiting for an answer (there is none): keystrokes go at once, in order. */
	async consoleInput(host: string, session: string, data: Uint8Array): Promise<void> {
		const request = makeRequest({type: 'vm.console.input', body: {session, data: Buffer.from(data).toString('base64')}}, this.stamp());
		await this.connection.publish(this.topo.commandExchange, this.topo.hostKey(host), encode(request), {userId: this.connection.user, contentType: 'application/json'});
	}

	/** Migrates a running VM live to host `to` (or the host with the most room), asked of the VM's host. */
	async migrate(vmId: string, options: {readonly host?: string; readonly to?: string; readonly timeoutMs: number}): Promise<ReplyValue<'vm.migrate'>> {
		const host = options.host ?? (await this.findOwner(vmId, options.timeoutMs));
		const body = options.to === undefined ? {vmId} : {vmId, to: options.to};
		return this.ask('vm.migrate', {type: 'vm.migrate', body}, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	/** Cordons (no new VMs) or uncordons a host; answers its status. */
	/** A TCP connect to the VM's address and `port`, made by its host (a group's `tcp:PORT` health check). */
	async probe(vmId: string, port: number, options: {readonly host: string; readonly connectTimeoutMs?: number; readonly timeoutMs: number}): Promise<ReplyValue<'vm.probe'>> {
		const body = {vmId, port, ...(options.connectTimeoutMs === undefined ? {} : {timeoutMs: options.connectTimeoutMs})};
		return this.ask('vm.probe', {type: 'vm.probe', body}, this.topo.commandExchange, this.topo.hostKey(options.host), options.timeoutMs, {host: options.host});
	}

	async cordon(host: string, options: {readonly cordoned: boolean; readonly timeoutMs: number}): Promise<ReplyValue<'host.cordon'>> {
		return this.ask('host.cordon', {type: 'host.cordon', body: {cordoned: options.cordoned}}, this.topo.commandExchange, this.topo.hostKey(host), options.timeoutMs, {host});
	}

	async close(): Promise<void> {
		await this.#connection?.close();
	}

	private attach(connection: BrokerConnection): this {
		this.#connection = connection;
		connection.on('state', state => {
			if (state.status !== 'connected') {
				this.rpc.connectionLost();
			}
		});
		return this;
	}

	/**
	 * The host that has VM `vmId`: a `vm.list` round for that VM alone, which ends at the first host
	 * that has it (only when no host has it does it wait for every live host, as a list round does).
	 */
	async findOwner(vmId: string, timeoutMs: number): Promise<string> {
		return (await this.findVm(vmId, timeoutMs)).host;
	}

	/** VM `vmId` as its owner lists it (the same round as `findOwner`). */
	async findVm(vmId: string, timeoutMs: number): Promise<Vm> {
		const hasVm = (snapshot: HostSnapshot) => snapshot.vms.some(vm => vm.id === vmId);
		const round = await this.broadcast('vm.list', {type: 'vm.list', body: {vmId}}, timeoutMs, value => value.roster, value => value, replies => replies.some(hasVm));
		// Mid-handover both hosts may have answered: the destination's copy (not marked migrating) is the one.
		const owner = oneCopyPerVm(round.replies.flatMap(snapshot => snapshot.vms)).find(vm => vm.id === vmId);
		if (owner) {
			return owner;
		}

		const silent = round.missing.length > 0 ? ` (no answer from ${round.missing.join(', ')})` : '';
		if (round.replies.length === 0) {
			throw new KloudRequestError('no_hosts', `no host answered within ${timeoutMs} ms${silent}`);
		}

		throw new KloudRequestError('unknown_vm', `no VM ${vmId} on any of ${round.replies.length} hosts that answered${silent}`);
	}

	private stamp() {
		return {id: randomUUID(), from: this.#options.sender, ts: Date.now()};
	}

	private async ask<T extends RequestType>(
		type: T,
		draft: RequestDraft,
		exchange: string,
		routingKey: string,
		timeoutMs: number,
		options: {readonly host?: string; readonly queueTtl?: (remainingMs: number) => number; readonly isRepeat?: boolean; readonly isRefusalFinal?: boolean} = {},
	): Promise<ReplyValue<T>> {
		// Every request here is safe to repeat (starts carry their token, stops of a stopped VM
		// answer with it): a lost connection costs a retry, not the request.
		const reply = await this.retrying(timeoutMs, type, options, async (remainingMs, attempt) =>
			this.rpc.request(exchange, routingKey, makeRequest(draft, this.stamp()), {
				timeoutMs: remainingMs,
				mandatory: true,
				...(options.queueTtl === undefined ? {} : {expirationMs: options.queueTtl(remainingMs)}),
				...(attempt > 1 || options.isRepeat ? {headers: {[REPEAT_HEADER]: true}} : {}),
			}),
		);
		return this.unwrap(type, reply);
	}

	/**
	 * Runs `send` until it resolves, again after a lost connection or an unconfirmed publish once
	 * the connection is back, all within `timeoutMs`; other failures are explained and thrown.
	 */
	private async retrying<R>(
		timeoutMs: number,
		type: RequestType,
		{host, isRefusalFinal = false}: {readonly host?: string; readonly isRefusalFinal?: boolean},
		send: (remainingMs: number, attempt: number) => Promise<R>,
	): Promise<R> {
		const deadline = Date.now() + timeoutMs;
		for (let attempt = 1; ; attempt++) {
			try {
				return await send(Math.max(1, deadline - Date.now()), attempt);
			} catch (error) {
				const isRetryable = (error instanceof ConnectionLostError && !(isRefusalFinal && error instanceof RequestRefusedError)) || error instanceof BrokerUnavailableError;
				if (!isRetryable || !(await this.connection.waitUntilConnected(deadline - Date.now())) || deadline - Date.now() < MIN_ATTEMPT_MS) {
					throw this.explain(error, type, host, timeoutMs);
				}

				// A channel that keeps failing at once (e.g. a refused publish) must not spin.
				await new Promise(resolve => setTimeout(resolve, Math.min(1000, 20 * attempt)));
			}
		}
	}

	private unwrap<T extends RequestType>(type: T, reply: Reply): ReplyValue<T> {
		if (!reply.ok) {
			throw new KloudRequestError(reply.code, `${reply.from}: ${reply.reason}`);
		}

		const value = parseReplyValue(type, reply.value);
		if (!value.ok) {
			throw new KloudRequestError('bad_request', `${reply.from}: ${value.error.reason}`);
		}

		return value.value;
	}

	private explain(error: unknown, type: RequestType, host: string | undefined, timeoutMs: number): KloudRequestError {
		if (error instanceof NoRouteError) {
			return host
				? new KloudRequestError('host_unreachable', `host ${host} is not connected to the broker`, {cause: error})
				: new KloudRequestError('no_hosts', 'no agent is serving this namespace', {cause: error});
		}

		if (error instanceof RequestTimeoutError) {
			const who = host ? `host ${host}` : 'any host';
			return new KloudRequestError('timeout', `no reply to ${type} from ${who} within ${(timeoutMs / 1000).toFixed(1)} s`, {cause: error});
		}

		return new KloudRequestError('broker', (error as Error).message, {cause: error});
	}

	/**
	 * `accept` may complete a reply (or refuse it: the host then counts as silent); `isAnswered` may
	 * end the round before every live host has answered (it has what it asked for).
	 */
	private async broadcast<T extends 'vm.list' | 'images.list'>(
		type: T,
		draft: RequestDraft,
		timeoutMs: number,
		rosterOf: (value: ReplyValue<T>) => readonly string[],
		accept: (value: ReplyValue<T>) => ReplyValue<T> | undefined = value => value,
		isAnswered: (replies: ReadonlyArray<ReplyValue<T>>) => boolean = () => false,
	): Promise<RoundResult<ReplyValue<T>>> {
		const answered = new Map<string, ReplyValue<T>>();
		const expected = new Set(this.roster.live(Date.now()));
		const isComplete = (replies: readonly Reply[]) => {
			const reply = replies.at(-1);
			if (reply?.ok) {
				const parsed = parseReplyValue(type, reply.value);
				if (parsed.ok) {
					// Capped: a reply cannot make the round wait for an unbounded list of hosts.
					for (const id of rosterOf(parsed.value).slice(0, MAX_ROSTER_HOSTS - expected.size)) {
						expected.add(id);
					}

					const value = accept(parsed.value);
					if (value !== undefined) {
						answered.set(reply.from, value);
					}
				}
			}

			return answered.size > 0 && (isAnswered([...answered.values()]) || [...expected].every(id => answered.has(id)));
		};

		const result = await this.retrying(timeoutMs, type, {}, async remainingMs =>
			this.rpc.gather(this.topo.commandExchange, ALL_HOSTS_KEY, makeRequest(draft, this.stamp()), {timeoutMs: remainingMs, isComplete}),
		);

		return {
			replies: [...answered.values()],
			missing: [...expected].filter(id => !answered.has(id)).sort(),
			durationMs: result.durationMs,
		};
	}

	private onEventMessage(message: ConsumeMessage | null): void {
		if (!message) {
			return;
		}

		if (!isTrustedEvent(message.properties.userId, this.#agentUsers)) {
			this.#droppedEvents++;
			return;
		}

		const parsed = parseEvent(message.content);
		if (!parsed.ok) {
			return;
		}

		this.roster.observe(parsed.value, Date.now());
		for (const listener of this.#eventListeners) {
			listener(parsed.value);
		}
	}
}

/**
 * Checks that the namespace's exchanges and queues exist; if not, declares them, or, for a user who may use but not declare them
 * (a tenant under the README's permission recipe: 403), checks that they exist. Each try has a
 * channel of its own, because a refusal closes the channel it happened on.
 */
async function declareOrCheckShared(context: SetupContext, topo: Topology): Promise<void> {
	// Nearly always an agent declared the namespace long ago: a passive check of its command exchange
	// and the start queue declared again (which checks its arguments), instead of six declarations one
	// after the other (a CLI run pays each round trip). The probe's channel is closed without waiting.
	const probe = await context.openChannel();
	if (await probe.checkExchange(topo.commandExchange).then(() => true, () => false)) {
		try {
			await declareStartQueue(probe, topo);
			void probe.close().catch(() => {});
			return;
		} catch (error) {
			if (error instanceof TopologyError) {
				throw error;
			}
		}
	}

	const channel = await context.openChannel();
	try {
		await declareShared(channel, topo);
		await channel.close();
		return;
	} catch (error) {
		if (!/ACCESS[-_]REFUSED|\b403\b/.test((error as Error).message)) {
			throw error;
		}
	}

	const checker = await context.openChannel();
	await checkShared(checker, topo).catch((error: unknown) => {
		throw new TopologyError(`namespace ${topo.namespace} does not exist yet and this user may not create it: start an agent first`, {cause: error});
	});
	await checker.close();
}

/**
 * Binds the event queue to every event (`#`); where the broker's topic permissions refuse that (a
 * tenant), to host events and to the events of this user's own VMs only.
 */
async function watchEvents(context: SetupContext, topo: Topology, user: string, onMessage: (message: ConsumeMessage | null) => void): Promise<void> {
	const {queue} = await context.channel.assertQueue('', {exclusive: true, autoDelete: true, durable: false});
	const probe = await context.openChannel();
	try {
		await probe.bindQueue(queue, topo.eventExchange, '#');
		await probe.close();
	} catch {
		for (const key of ['host.#', `vm.*.${user}.#`]) {
			await context.channel.bindQueue(queue, topo.eventExchange, key);
		}
	}

	await context.channel.consume(queue, onMessage, {noAck: true});
}
