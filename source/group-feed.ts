/**
 * Feeds the TUI's store with the groups stream: a connection of its own reads `<ns>.groups` from
 * its first record and follows it (re-read after a reconnect), each change dispatched as the
 * groups now are. Where the stream cannot be read (a tenant the broker refuses it), the TUI simply
 * shows no groups.
 */
import {BrokerConnection, type TlsOptions} from './broker/connection.js';
import {GroupStore} from './broker/group-store.js';
import {topology} from './protocol/index.js';
import type {FleetStore} from './state/store.js';

export type GroupFeedOptions = {readonly url: string; readonly namespace: string; readonly connectionName: string; readonly tls?: TlsOptions};

export async function watchGroups(options: GroupFeedOptions, store: FleetStore): Promise<{close(): Promise<void>}> {
	const groups = new GroupStore(topology(options.namespace));
	const off = groups.onChange(current => store.dispatch({type: 'groups', at: Date.now(), groups: current}));
	try {
		const connection = await BrokerConnection.open({
			url: options.url,
			connectionName: options.connectionName,
			reconnect: true,
			firstConnect: 'fail-on-setup-error',
			...(options.tls === undefined ? {} : {tls: options.tls}),
			setup: async context => groups.setup(context),
		});
		return {
			async close() {
				off();
				await connection.close();
			},
		};
	} catch (error) {
		off();
		throw error;
	}
}
