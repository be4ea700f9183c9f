/**
 * Bare `kloud-tui`: checks the TUI's flags and runs it. Light on purpose (no zod, no amqplib): the
 * TUI draws its first frame before the broker's modules load.
 */
import {redactUrl} from '../broker/url.js';
import {checkNamespace} from '../protocol/names.js';
import {UsageError, type CliArgs} from './args.js';
import {agentUsers, tlsOptions} from './connect-flags.js';

const ENTER_ALTERNATE_SCREEN = '\u001B[?1049h';
const LEAVE_ALTERNATE_SCREEN = '\u001B[?1049l';

/**
 * Imports the TUI (Ink, React, yoga) with the global `fetch` hidden meanwhile: yoga's WebAssembly
 * loader asks `typeof fetch`, and that alone makes Node 20 load its fetch implementation (undici,
 * ≈ 25 ms before the first frame) only for yoga to read its inlined binary through it. Without
 * fetch, yoga decodes the same binary itself.
 */
async function importTui(): Promise<typeof import('../tui.js')> {
	const fetchProperty = Object.getOwnPropertyDescriptor(globalThis, 'fetch');
	if (fetchProperty?.configurable) {
		Object.defineProperty(globalThis, 'fetch', {value: undefined, configurable: true, writable: true});
	}

	try {
		return await import('../tui.js');
	} finally {
		if (fetchProperty?.configurable) {
			Object.defineProperty(globalThis, 'fetch', fetchProperty);
		}
	}
}

export async function runTuiCommand(flags: CliArgs['flags']): Promise<void> {
	const namespaceError = checkNamespace(flags.namespace);
	if (namespaceError) {
		throw new UsageError(namespaceError);
	}

	if (!(flags.refresh > 0)) {
		throw new UsageError(`invalid --refresh ${flags.refresh}: must be a number of seconds > 0`);
	}

	const tls = tlsOptions(flags);
	const isTty = Boolean(process.stdout.isTTY);
	const restore = () => {
		if (isTty) {
			process.stdout.write(LEAVE_ALTERNATE_SCREEN);
		}
	};

	// The alternate screen keeps the operator's scrollback as it was when we quit. It is entered, with
	// a first line saying where the TUI connects, before Ink and React load (≈ 0.2–0.3 s here): the
	// operator sees the TUI start within about the time Node takes to start. Ink's frame replaces it.
	if (isTty) {
		process.stdout.write(`${ENTER_ALTERNATE_SCREEN}kloud ○ starting · ${redactUrl(flags.amqp)} ns ${flags.namespace}`);
	}

	process.once('exit', restore);
	try {
		const {runTui} = await importTui();
		await runTui({url: flags.amqp, namespace: flags.namespace, refreshMs: flags.refresh * 1000, agentUsers: agentUsers(flags), ...(tls ? {tls} : {})});
	} finally {
		restore();
		process.off('exit', restore);
	}
}
