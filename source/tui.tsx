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
};

/** Back to the line's start, the line erased. */
const CLEAR_LINE = '\r\u001B[2K';

/** Connects and starts the feed; the broker's modules are loaded only now, after the first frame. */
async function connect(options: TuiOptions, store: FleetStore): Promise<{client: KloudClient; feed: Feed}> {
	const [{connectOperator}, {startFeed}] = await Promise.all([import('./operator.js'), import('./feed.js')]);
	const client = await connectOperator({url: options.url, namespace: options.namespace, watchEvents: true, ...(options.agentUsers === undefined ? {} : {agentUsers: options.agentUsers}), ...(options.tls === undefined ? {} : {tls: options.tls})});
	return {client, feed: startFeed(client, store, {refreshMs: options.refreshMs})};
}

export async function runTui(options: TuiOptions): Promise<void> {
	const store = new FleetStore(Date.now());
	let feed: Feed | undefined;
	let connecting: Promise<{client: KloudClient; feed: Feed}> | undefined;
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
		const instance = render(<App store={store} actions={actions} info={{brokerUrl, namespace: options.namespace, refreshMs: options.refreshMs}} />, {
			maxFps: 30,
			exitOnCtrlC: false,
		});
		connecting = connect(options, store);
		connecting.then(
			connected => {
				feed = connected.feed;
			},
			// Nothing to show without a client (a reconnecting client is made even while the broker is down).
			(error: unknown) => instance.unmount(error as Error),
		);
		await instance.waitUntilExit();
		instance.cleanup();
	} finally {
		// At most one connection attempt in flight: closed as soon as it is made.
		await connecting?.then(
			async connected => {
				connected.feed.close();
				await connected.client.close();
			},
			() => {},
		);
	}
}
