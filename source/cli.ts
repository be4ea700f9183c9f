#!/usr/bin/env node
/**
 * `kloud-tui`: the operator's terminal UI and its scriptable subcommands. This entry loads only the
 * argument parser; `--help` prints from here, everything else is imported when it runs (the TUI
 * pulls in Ink and React, ≈ 0.7 s; a subcommand zod and amqplib, ≈ 0.15 s), so a script's
 * `kloud-tui list` never pays for the TUI.
 */
import './production-env.js';
import {existsSync, readFileSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import {parseCliArgs} from './cli/args.js';
import type {runCli as RunCli} from './cli/run.js';
import {USAGE} from './cli/usage.js';

async function main(): Promise<void> {
	const args = parseCliArgs(process.argv.slice(2), process.env);
	if (args.flags.help) {
		process.stdout.write(`${USAGE}\n`);
		return;
	}

	if (args.flags.version) {
		const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {version: string};
		process.stdout.write(`${manifest.version}\n`);
		return;
	}

	if (args.command === undefined) {
		const {runTuiCommand} = await import('./cli/run-tui.js');
		await runTuiCommand(args.flags);
		return;
	}

	const {runCli, onDone} = await loadRunner();
	await runCli(args);
	onDone();
}

/**
 * A subcommand runs from `subcommands.cjs` beside this bundle, through a V8 code cache (see
 * cli/code-cache.ts); a build without that file (tsc's output run directly) imports the ES module.
 */
async function loadRunner(): Promise<{runCli: typeof RunCli; onDone: () => void}> {
	const bundle = fileURLToPath(new URL('subcommands.cjs', import.meta.url));
	if (existsSync(bundle)) {
		const {cacheDirectory, loadBundle} = await import('./cli/code-cache.js');
		const loaded = loadBundle<{runCli: typeof RunCli}>(bundle, cacheDirectory(process.env));
		return {runCli: loaded.exports.runCli, onDone: () => loaded.save()};
	}

	const {runCli} = await import('./cli/run.js');
	return {runCli, onDone: () => {}};
}

// A promise, not a top-level await: the bundle is CommonJS (scripts/bundle.mjs).
main().catch((error: unknown) => {
	// By name, not instanceof: a subcommand's UsageError comes from the CommonJS bundle's own copy of the class.
	const isUsage = (error as Error).name === 'UsageError';
	process.stderr.write(`kloud-tui: ${(error as Error).message}\n`);
	process.exitCode = isUsage ? 2 : 1;
	// A failed request is explained by its one line; anything else is a bug worth its stack.
	if (!isUsage && (error as Error).name !== 'KloudRequestError') {
		process.stderr.write(`${(error as Error).stack ?? ''}\n`.replace(/^.*\n/, ''));
	}
});
