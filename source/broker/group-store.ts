/**
 * Group specs kept in the broker itself: the stream `<ns>.groups` (README, "Groups"; PROTOCOL.md
 * says why a stream). Every change is a record appended with a publisher confirm; a reader
 * consumes from the first offset and folds them, the latest `group.put` per name winning, a
 * `group.delete` its tombstone. A stream is replicated and durable like a quorum queue, but reading
 * it does not consume it, so every controller (and every CLI run) reads the same history again.
 */
import {randomUUID} from 'node:crypto';
import type {Channel, ConsumeMessage} from 'amqplib';
import {applyGroupRecord, groupRecordSchema, PROTOCOL_VERSION, type GroupRecord, type StoredGroup, type Topology} from '../protocol/index.js';
import {BrokerConnection, type SetupContext, type TlsOptions} from './connection.js';

/** Records in flight to a reader at once (a stream consumer needs a prefetch). */
const STREAM_PREFETCH = 256;

type Draft = DistributiveOmit<GroupRecord, 'v' | 'ts'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The groups as read so far from the stream; fed by `setup` on each (re)connection. */
export class GroupStore {
	#groups: ReadonlyMap<string, StoredGroup> = new Map();
	/** `name:uid` of every group whose tombstone was read: its members may be deleted. */
	#deleted = new Set<string>();
	#channel: Channel | undefined;
	#epoch = 0;
	readonly #syncWaiters = new Map<string, () => void>();
	readonly #listeners = new Set<(groups: ReadonlyMap<string, StoredGroup>) => void>();
	readonly #topo: Topology;
	readonly #isTrustedWriter: (userId: string | null) => boolean;

	/**
	 * `isTrustedWriter`: whose records count (by their broker-validated user id); default everyone's.
	 * The controller of a `--tenants` fleet trusts only the agents' users and admins: a tenant has
	 * no write permission on the default exchange under the README's recipe, but a broker set up
	 * otherwise (or an older recipe) may still let it reach the stream.
	 */
	constructor(topo: Topology, options: {readonly isTrustedWriter?: (userId: string | null) => boolean} = {}) {
		this.#topo = topo;
		this.#isTrustedWriter = options.isTrustedWriter ?? (() => true);
	}

	get groups(): ReadonlyMap<string, StoredGroup> {
		return this.#groups;
	}

	get deleted(): ReadonlySet<string> {
		return this.#deleted;
	}

	/** Counts the connections read on: a reader that synced on an older one must sync again. */
	get epoch(): number {
		return this.#epoch;
	}

	onChange(listener: (groups: ReadonlyMap<string, StoredGroup>) => void): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	/** Declares the stream and reads it from its first record (run from a connection's `setup`). */
	async setup(context: SetupContext): Promise<void> {
		await declareGroupsStream(context.channel, this.#topo);
		const channel = await context.openChannel();
		await channel.prefetch(STREAM_PREFETCH);
		this.#groups = new Map();
		this.#deleted = new Set();
		this.#channel = channel;
		this.#epoch++;
		await channel.consume(this.#topo.groupsStream, message => this.onMessage(channel, message), {noAck: false, arguments: {'x-stream-offset': 'first'}});
	}

	/** Appends one record, confirmed by the broker; `userId` makes the broker vouch for who wrote it. */
	async append(connection: BrokerConnection, draft: Draft): Promise<void> {
		const record = {v: PROTOCOL_VERSION, ts: Date.now(), ...draft};
		await connection.publish('', this.#topo.groupsStream, new TextEncoder().encode(JSON.stringify(record)), {
			persistent: true,
			contentType: 'application/json',
			userId: connection.user,
		});
	}

	/** Resolves once every record appended before this call has been read (a marker appended and read back). */
	async sync(connection: BrokerConnection, timeoutMs: number): Promise<void> {
		const id = randomUUID();
		let timer: NodeJS.Timeout | undefined;
		// Waiting before appending: the marker may be read back before `append` returns.
		const seen = new Promise<void>((resolve, reject) => {
			timer = setTimeout(() => {
				this.#syncWaiters.delete(id);
				reject(new Error(`could not read the groups stream ${this.#topo.groupsStream} to its end within ${timeoutMs} ms`));
			}, timeoutMs);
			this.#syncWaiters.set(id, () => {
				clearTimeout(timer);
				resolve();
			});
		});
		try {
			await this.append(connection, {kind: 'sync', id});
		} catch (error) {
			// Not appended (e.g. the connection is between brokers): no marker will come, and a timer left
			// to reject `seen` with no one awaiting it would be an unhandled rejection, killing the agent.
			clearTimeout(timer);
			this.#syncWaiters.delete(id);
			throw error;
		}

		await seen;
	}

	private onMessage(channel: Channel, message: ConsumeMessage | null): void {
		if (!message || channel !== this.#channel) {
			return;
		}

		channel.ack(message);
		const offset = Number((message.properties.headers as Record<string, unknown> | undefined)?.['x-stream-offset'] ?? -1);
		let json: unknown;
		try {
			json = JSON.parse(message.content.toString('utf8'));
		} catch {
			return;
		}

		// A record that does not parse (another version's, or junk) is skipped: the stream cannot drop it.
		const parsed = groupRecordSchema.safeParse(json);
		if (!parsed.success) {
			return;
		}

		const record = parsed.data;
		const writer = typeof message.properties.userId === 'string' ? message.properties.userId : null;
		if (record.kind !== 'sync' && !this.#isTrustedWriter(writer)) {
			return;
		}

		if (record.kind === 'group.delete') {
			this.#deleted.add(`${record.name}:${record.uid}`);
		}

		const next = applyGroupRecord(this.#groups, record, offset, writer);
		if (next !== this.#groups) {
			this.#groups = next;
			for (const listener of this.#listeners) {
				listener(next);
			}
		}

		if (record.kind === 'sync') {
			this.#syncWaiters.get(record.id)?.();
			this.#syncWaiters.delete(record.id);
		}
	}
}

/** The stream's declaration; no retention limit, because its records are the specs themselves. */
export async function declareGroupsStream(channel: Channel, topo: Topology): Promise<void> {
	await channel.assertQueue(topo.groupsStream, {durable: true, arguments: {'x-queue-type': 'stream'}});
}

/**
 * A stream not served yet where this client is connected: its home node has just (re)started (404
 * "home node … is down or inaccessible"), or this node's replica is not back yet after a restart
 * (406 "does not have a replica on the local node", seen on a 3-node cluster after `stop_app` on
 * each node in turn). Either comes within seconds: wait for it rather than fail the command.
 */
export function isStreamStarting(message: string): boolean {
	return /home node .* is down or inaccessible|does not have a replica on the local node/.test(message);
}

/** A one-shot reader and writer of the groups stream (a CLI run): its own connection. */
export class GroupStoreClient {
	static async open(options: {readonly url: string; readonly topo: Topology; readonly connectionName: string; readonly tls?: TlsOptions; readonly timeoutMs: number}): Promise<GroupStoreClient> {
		const deadline = Date.now() + options.timeoutMs;
		for (;;) {
			const store = new GroupStore(options.topo);
			try {
				const connection = await BrokerConnection.open({
					url: options.url,
					connectionName: options.connectionName,
					reconnect: false,
					...(options.tls === undefined ? {} : {tls: options.tls}),
					setup: async context => store.setup(context),
				});
				return new GroupStoreClient(store, connection, options.timeoutMs);
			} catch (error) {
				if (!isStreamStarting((error as Error).message) || Date.now() > deadline) {
					throw error;
				}

				await new Promise(resolve => setTimeout(resolve, 500));
			}
		}
	}

	readonly #store: GroupStore;
	readonly #connection: BrokerConnection;
	readonly #timeoutMs: number;

	private constructor(store: GroupStore, connection: BrokerConnection, timeoutMs: number) {
		this.#store = store;
		this.#connection = connection;
		this.#timeoutMs = timeoutMs;
	}

	/** The user the broker will vouch for as this client's records' writer. */
	get user(): string {
		return this.#connection.user;
	}

	/** Every group, read to the stream's end. */
	async groups(): Promise<ReadonlyMap<string, StoredGroup>> {
		await this.#store.sync(this.#connection, this.#timeoutMs);
		return this.#store.groups;
	}

	async append(draft: Draft): Promise<void> {
		await this.#store.append(this.#connection, draft);
	}

	async close(): Promise<void> {
		await this.#connection.close();
	}
}
