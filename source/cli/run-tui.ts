/**
 * Bare `kloud-tui`: checks the TUI's flags and runs it. Light on purpose (no zod, no amqplib): the
 * TUI draws its first frame before the broker's modules load.
 */
import {existsSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import {redactUrl} from '../broker/url.js';
import {checkNamespace} from '../protocol/names.js';
import {UsageError, type CliArgs} from './args.js';
import {agentUsers, tlsOptions} from './connect-flags.js';

const ENTER_ALTERNATE_SCREEN = '\u001B[?1049h';
const LEAVE_ALTERNATE_SCREEN = '\u001B[?1049l';

type Tui = typeof import('../tui.js');
type TuiBroker = typeof import('../tui-broker.js');

/** The TUI's code, and how to write the code caches it ran with. */
type LoadedTui = {readonly tui: Tui; readonly loadBroker: () => Promise<TuiBroker>; readonly saveCaches: () => void};

/**
 * The TUI from `tui.cjs` beside this bundle, and its broker's side from `tui-broker.cjs`, each
 * through a V8 code cache (code-cache.ts) as the subcommands run: compiling Ink, React and yoga
 * was most of the time to Ink's first frame. A build without them (tsc's output run directly)
 * imports the ES modules.
 *
 * A cache holds the functions compiled so far, so each is written once its code has done what a
 * start needs: the TUI's when the broker's side is asked for (the first frame is on screen by
 * then), the broker side's when connected (`saveCaches`), or at exit if that never came.
 */
async function loadTui(): Promise<LoadedTui> {
	const bundle = fileURLToPath(new URL('tui.cjs', import.meta.url));
	if (!existsSync(bundle)) {
		return {tui: await importTui(), loadBroker: async () => import('../tui-broker.js'), saveCaches() {}};
	}

	const {cacheDirectory, loadBundle} = await import('./code-cache.js');
	const cacheDir = cacheDirectory(process.env);
	const loaded = loadBundle<Tui>(bundle, cacheDir);
	let broker: ReturnType<typeof loadBundle<TuiBroker>> | undefined;
	return {
		tui: loaded.exports,
		async loadBroker() {
			loaded.save();
			broker ??= loadBundle<TuiBroker>(fileURLToPath(new URL('tui-broker.cjs', import.meta.url)), cacheDir);
			return broker.exports;
		},
		saveCaches() {
			loaded.save();
			broker?.save();
		},
	};
}

/**
 * Imports the TUI's ES modules (Ink, React, yoga) with the global `fetch` hidden meanwhile: yoga's
 * WebAssembly loader asks `typeof fetch`, and that alone makes Node 20 load its fetch implementation
 * (undici, ≈ 25 ms) only for yoga to read its inlined binary through it. Without fetch, yoga decodes
 * the same binary itself. (The bundle instantiates yoga synchronously and never asks: scripts/yoga-sync.mjs.)
 */
async function importTui(): Promise<Tui> {
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
		const {tui, loadBroker, saveCaches} = await loadTui();
		try {
			await tui.runTui({url: flags.amqp, namespace: flags.namespace, refreshMs: flags.refresh * 1000, agentUsers: agentUsers(flags), loadBroker, onConnected: saveCaches, ...(tls ? {tls} : {})});
		} finally {
			saveCaches();
		}
	} finally {
		restore();
		process.off('exit', restore);
	}
}
