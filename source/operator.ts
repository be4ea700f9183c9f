/** How an operator's process (a CLI run or the TUI) connects: one identity, named per user and pid. */
import {userInfo} from 'node:os';
import {KloudClient} from './broker/client.js';
import type {TlsOptions} from './broker/connection.js';

export type OperatorConnectOptions = {
	readonly url: string;
	readonly namespace: string;
	readonly tls?: TlsOptions;
	/** The TUI: heartbeats and VM events between list rounds. */
	readonly watchEvents?: boolean;
	/** A CLI run: an unreachable broker is an error at once (a drop later is still re-made). */
	readonly failFast?: boolean;
	/** RabbitMQ users whose events count (default: this connection's own user). */
	readonly agentUsers?: readonly string[];
};

export async function connectOperator(options: OperatorConnectOptions): Promise<KloudClient> {
	const user = userInfo().username;
	return KloudClient.connect({
		url: options.url,
		namespace: options.namespace,
		// The pid tells one run from another in `rabbitmqctl list_connections` (e.g. to close just that one).
		connectionName: `kloud-tui@${user}:${process.pid}`,
		sender: `kloud-tui@${user}`,
		// A dropped connection is re-made and the request sent again (starts keep their token).
		reconnect: true,
		...(options.watchEvents ? {watchEvents: true} : {}),
		...(options.failFast ? {failFast: true} : {}),
		...(options.agentUsers === undefined ? {} : {agentUsers: options.agentUsers}),
		...(options.tls === undefined ? {} : {tls: options.tls}),
	});
}
