/**
 * Bare `kloud-tui` (in the alternate screen cli/run-tui.ts entered): the first frame ("connecting")
 * on screen, then connect (reconnecting forever), feed the store, render the table.
 */
import {render} from 'ink';
import type {TlsOptions} from './broker/connection.js';
import {redactUrl} from './broker/url.js';
import type {KloudClient} from './broker/client.js';
import type {Feed} from './feed.js';
import {FleetStore} from './state/store.js';
import type {FleetActions} from './ui/actions.js';
import {App} from './ui/app.js';

export type TuiOptions = {
	readonly url: string;
	readonly namespace: string;
	readonly refreshMs: number;
	readonly tls?: TlsOptions;
	readonly agentUsers?: readonly string[];
	/**
	 * Loads the broker's side (tui-broker.ts), called once the first frame is out. Handed in, not
	 * imported: the TUI runs as a `vm.Script` (cli/run-tui.ts), where `import()` throws.
	 */
	readonly loadBroker: () => Promise<TuiBroker>;
	/** Called once, when the first connection is made and the feed started (cli/run-tui.ts writes its code caches then). */
	readonly onConnected?: () => void;
};

export type TuiBroker = typeof import('./tui-broker.js');

/** Back to the line's start, the line erased. */
const CLEAR_LINE = '\r\u001B[2K';

/** Connects and starts the feed; the broker's modules are loaded only now, after the first frame. */
async function connect(options: TuiOptions, store: FleetStore): Promise<{client: KloudClient; feed: Feed; groups: Promise<{close(): Promise<void>} | undefined>}> {
	const {connectOperator, startFeed, watchGroups} = await options.loadBroker();
	const client = await connectOperator({url: options.url, namespace: options.namespace, watchEvents: true, ...(options.agentUsers === undefined ? {} : {agentUsers: options.agentUsers}), ...(options.tls === undefined ? {} : {tls: options.tls})});
	// The groups view: read beside the fleet; a broker that refuses the stream leaves it empty.
	const groups = watchGroups({url: options.url, namespace: options.namespace, connectionName: `kloud-tui-groups:${process.pid}`, ...(options.tls === undefined ? {} : {tls: options.tls})}, store).catch(() => undefined);
	return {client, feed: startFeed(client, store, {refreshMs: options.refreshMs}), groups};
}

/** VM `vmId`'s live console on the whole screen, until ctrl-] (or its end: then a key returns). */
async function runConsole(client: KloudClient, vmId: string, broker: TuiBroker): Promise<void> {
	const {attachConsole} = broker;
	process.stdout.write(CLEAR_SCREEN);
	const code = await attachConsole(client, vmId, {write: true, timeoutMs: 5000}).catch((error: unknown) => {
		process.stderr.write(`\r\n[kloud: ${(error as Error).message}]\r\n`);
		return 1;
	});
	if (code !== 0 && process.stdin.isTTY) {
		// Let the reason be read before the table covers it.
		process.stderr.write('[kloud: press a key to return to the table]');
		process.stdin.setRawMode(true);
		process.stdin.resume();
		await new Promise(resolve => process.stdin.once('data', resolve));
		process.stdin.setRawMode(false);
		process.stdin.pause();
	}

	process.stdout.write(CLEAR_SCREEN);
	// The console paused stdin, which leaves the stream believing a read is under way: Ink's next
	// 'readable' listener would then never start one (no keys, and an idle event loop ends the TUI).
	// Resuming starts the terminal's reads again; Ink takes them over.
	process.stdin.resume();
}

const CLEAR_SCREEN = '\u001B[2J\u001B[H';

export async function runTui(options: TuiOptions): Promise<void> {
	const store = new FleetStore(Date.now());
	let feed: Feed | undefined;
	let connecting: Promise<{client: KloudClient; feed: Feed; groups: Promise<{close(): Promise<void>} | undefined>}> | undefined;
	// What the operator asks for before the connection is made waits for it (a key pressed on the first frame).
	const ready = async () => (await connecting!).feed;
	const actions: FleetActions = {
		refresh: () => feed?.refresh(),
		images: async () => (await ready()).images(),
		start: async request => (await ready()).start(request),
		stop: async (target, stopOptions) => (await ready()).stop(target, stopOptions),
		boot: async target => (await ready()).boot(target),
		reboot: async (target, rebootOptions) => (await ready()).reboot(target, rebootOptions),
		delete: async target => (await ready()).delete(target),
		consoleTail: async target => (await ready()).consoleTail(target),
		migrate: async (target, to) => (await ready()).migrate(target, to),
		cordon: async (host, cordonOptions) => (await ready()).cordon(host, cordonOptions),
		drain: async (host, onProgress) => (await ready()).drain(host, onProgress),
	};
	try {
		// The first frame goes out before anything connects: the header says "connecting" and where to.
		// It replaces the line the command line wrote while Ink loaded (cli/run-tui.ts).
		if (process.stdout.isTTY) {
			process.stdout.write(CLEAR_LINE);
		}

		// A cluster's URL list would fill the header: its size says enough (the header names the node in use).
		const urlCount = options.url.split(',').filter(url => url.trim() !== '').length;
		const brokerUrl = urlCount > 1 ? `${urlCount} brokers` : redactUrl(options.url);
		// `c` ends the App for a VM's console; ctrl-] there renders it again (the store kept the fleet).
		for (;;) {
			let consoleOf: string | undefined;
			const instance = render(
				<App
					store={store}
					actions={actions}
					info={{brokerUrl, namespace: options.namespace, refreshMs: options.refreshMs}}
					onConsole={vmId => {
						consoleOf = vmId;
					}}
				/>,
				{maxFps: 30, exitOnCtrlC: false},
			);
			if (connecting === undefined) {
				connecting = connect(options, store);
				connecting.then(
					connected => {
						feed = connected.feed;
						options.onConnected?.();
					},
					// Nothing to show without a client (a reconnecting client is made even while the broker is down).
					(error: unknown) => instance.unmount(error as Error),
				);
			}

			await instance.waitUntilExit();
			instance.cleanup();
			if (consoleOf === undefined) {
				break;
			}

			await runConsole((await connecting).client, consoleOf, await options.loadBroker());
		}
	} finally {
		// At most one connection attempt in flight: closed as soon as it is made.
		await connecting?.then(
			async connected => {
				connected.feed.close();
				await (await connected.groups)?.close();
				await connected.client.close();
			},
			() => {},
		);
	}
}
