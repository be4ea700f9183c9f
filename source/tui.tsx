/** Bare `kloud-tui`: connect (reconnecting forever), feed the store, render the table, restore the terminal on quit. */
import {render} from 'ink';
import {redactUrl, type TlsOptions} from './broker/connection.js';
import type {KloudClient} from './broker/client.js';
import {attachConsole} from './cli/console-attach.js';
import {startFeed} from './feed.js';
import {connectOperator} from './operator.js';
import {FleetStore} from './state/store.js';
import {App} from './ui/app.js';

export type TuiOptions = {readonly url: string; readonly namespace: string; readonly refreshMs: number; readonly tls?: TlsOptions; readonly agentUsers?: readonly string[]};

/** VM `vmId`'s live console on the whole screen, until ctrl-] (or its end: then a key returns). */
async function runConsole(client: KloudClient, vmId: string): Promise<void> {
	process.stdout.write(`${CLEAR_SCREEN}`);
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
		// `c` ends the App for a VM's console; ctrl-] there renders it again (the store kept the fleet).
		for (;;) {
			let consoleOf: string | undefined;
			const instance = render(
				<App
					store={store}
					actions={feed}
					info={{brokerUrl: redactUrl(options.url), namespace: options.namespace, refreshMs: options.refreshMs}}
					onConsole={vmId => {
						consoleOf = vmId;
					}}
				/>,
				{maxFps: 30, exitOnCtrlC: false},
			);
			await instance.waitUntilExit();
			instance.cleanup();
			if (consoleOf === undefined) {
				break;
			}

			await runConsole(client, consoleOf);
		}
	} finally {
		restore();
		process.off('exit', restore);
		feed.close();
		await client.close();
	}
}
