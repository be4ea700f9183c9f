/** Bare `kloud-tui`: connect (reconnecting forever), feed the store, render the table, restore the terminal on quit. */
import {render} from 'ink';
import {redactUrl, type TlsOptions} from './broker/connection.js';
import {startFeed} from './feed.js';
import {connectOperator} from './operator.js';
import {FleetStore} from './state/store.js';
import {App} from './ui/app.js';

export type TuiOptions = {readonly url: string; readonly namespace: string; readonly refreshMs: number; readonly tls?: TlsOptions; readonly agentUsers?: readonly string[]};

const ENTER_ALTERNATE_SCREEN = '\u001B[?1049h';
const LEAVE_ALTERNATE_SCREEN = '\u001B[?1049l';

export async function runTui(options: TuiOptions): Promise<void> {
	const client = await connectOperator({url: options.url, namespace: options.namespace, watchEvents: true, ...(options.agentUsers === undefined ? {} : {agentUsers: options.agentUsers}), ...(options.tls === undefined ? {} : {tls: options.tls})});
	const store = new FleetStore(Date.now());
	const feed = startFeed(client, store, {refreshMs: options.refreshMs});
	const isTty = Boolean(process.stdout.isTTY);
	// The alternate screen keeps the operator's scrollback as it was when we quit.
	if (isTty) {
		process.stdout.write(ENTER_ALTERNATE_SCREEN);
	}

	const restore = () => {
		if (isTty) {
			process.stdout.write(LEAVE_ALTERNATE_SCREEN);
		}
	};

	process.once('exit', restore);
	try {
		// A cluster's URL list would fill the header: its size says enough (the header names the node in use).
		const urlCount = options.url.split(',').filter(url => url.trim() !== '').length;
		const brokerUrl = urlCount > 1 ? `${urlCount} brokers` : redactUrl(options.url);
		const instance = render(<App store={store} actions={feed} info={{brokerUrl, namespace: options.namespace, refreshMs: options.refreshMs}} />, {
			maxFps: 30,
			exitOnCtrlC: false,
		});
		await instance.waitUntilExit();
		instance.cleanup();
	} finally {
		restore();
		process.off('exit', restore);
		feed.close();
		await client.close();
	}
}
