/**
 * The groups stream on the real broker: records folded in order, read again in full by a second
 * reader, and, for a `--tenants` controller, records of untrusted writers (by their
 * broker-validated user id) ignored: the attack is a tenant publishing a spec to the stream.
 */
import {randomBytes} from 'node:crypto';
import {afterAll, expect, it} from 'vitest';
import {BrokerConnection} from '../../source/broker/connection.js';
import {GroupStore} from '../../source/broker/group-store.js';
import {topology, type GroupSpec} from '../../source/protocol/index.js';
import {AMQP_URL, deleteNamespace} from '../helpers/cloud.js';

const namespace = `test-gstore-${randomBytes(3).toString('hex')}`;
const topo = topology(namespace);
const connections: BrokerConnection[] = [];
const spec: GroupSpec = {name: 'web', uid: 'abcd1234', image: 'demo', size: 2, min: 0, max: 4, health: {kind: 'none'}, healthGraceSeconds: 30, hostGraceSeconds: 15};

async function reader(options: ConstructorParameters<typeof GroupStore>[1] = {}): Promise<{store: GroupStore; connection: BrokerConnection}> {
	const store = new GroupStore(topo, options);
	const connection = await BrokerConnection.open({url: AMQP_URL, connectionName: 'kloud-test-group-store', reconnect: false, setup: async context => store.setup(context)});
	connections.push(connection);
	return {store, connection};
}

afterAll(async () => {
	await Promise.all(connections.map(async connection => connection.close()));
	await deleteNamespace(namespace);
});

it('folds put, scale and tombstone in order; a second reader reads the same; an untrusted writer is ignored', async () => {
	const writer = await reader();
	await writer.store.append(writer.connection, {kind: 'group.put', spec});
	await writer.store.append(writer.connection, {kind: 'group.put', spec: {...spec, size: 3}});
	await writer.store.append(writer.connection, {kind: 'group.put', spec: {...spec, name: 'db'}});
	await writer.store.append(writer.connection, {kind: 'group.delete', name: 'db', uid: spec.uid});
	await writer.store.sync(writer.connection, 10_000);
	expect([...writer.store.groups.keys()]).toEqual(['web']);
	expect(writer.store.groups.get('web')).toMatchObject({spec: {size: 3}, by: 'guest'});
	expect([...writer.store.deleted]).toEqual(['db:abcd1234']);

	const second = await reader();
	await second.store.sync(second.connection, 10_000);
	expect(second.store.groups).toEqual(writer.store.groups);

	// A --tenants controller trusting only "kloud-agent": guest's records (here, the tenant's) do not count.
	const strict = await reader({isTrustedWriter: user => user === 'kloud-agent'});
	await strict.store.sync(strict.connection, 10_000);
	expect(strict.store.groups.size).toBe(0);
	expect(strict.store.deleted.size).toBe(0);
});

it('a sync on a connection that is between brokers fails at once, and leaves nothing to blow up later', async () => {
	// What an elected controller met when its broker node stopped: its round's sync could not append
	// the marker, and the marker's timer, left behind, rejected with no one waiting (an unhandled
	// rejection ends a Node process: the agent died 10 s after its node did).
	const unhandled: unknown[] = [];
	const onUnhandled = (reason: unknown) => unhandled.push(reason);
	process.on('unhandledRejection', onUnhandled);
	try {
		const {store, connection} = await reader();
		await connection.close();
		await expect(store.sync(connection, 300)).rejects.toThrow(/not connected to the broker/);
		await new Promise(resolve => setTimeout(resolve, 600));
		expect(unhandled).toEqual([]);
	} finally {
		process.off('unhandledRejection', onUnhandled);
	}
});
