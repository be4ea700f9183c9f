#!/usr/bin/env node
/**
 * Bundles `kloud-tui` (after tsc) into dist/bin/, all CommonJS: one small entry that parses the
 * command line, and the bundles it runs through V8 code caches when needed (the subcommands' zod +
 * amqplib; the TUI's Ink + React; the TUI's broker side). Node 20 has no compile cache, so start-up
 * is mostly resolving and compiling modules: as ~300 ESM files Ink alone took ≈ 0.8 s to import
 * here, bundled ≈ 0.2 s, from a code cache less. `dist/bin/meta.json` says which sources each
 * output holds (the module-graph test reads it).
 */
import {build} from 'esbuild';
import {readFile, rm, writeFile} from 'node:fs/promises';
import {fileURLToPath} from 'node:url';
import {lazyTextSetUp} from './tui-text-plugins.mjs';
import {inkWithoutTopLevelAwait, yogaSync} from './tui-cjs-plugins.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * zod re-exports all of its ≈ 50 locales (`z.locales`, 366 KB of the 1 MB a subcommand loads) though
 * only English, its default, is used: the bundle carries English alone.
 */
const onlyEnglishZodLocale = {
	name: 'only-english-zod-locale',
	setup(build) {
		build.onResolve({filter: /^\.\.\/locales\/index\.js$/}, args =>
			args.importer.includes('/node_modules/zod/') ? {path: fileURLToPath(new URL('zod-locales-en.mjs', import.meta.url))} : undefined,
		);
	},
};
/**
 * amqplib requires `node:tls` when it loads (≈ 25 ms here, after `node:net`), for amqps:// alone:
 * the bundle requires it when an amqps:// connection is made. The rewrite must find its line.
 */
const AMQPLIB_TLS = "const tls = require('node:tls');";
const amqplibTlsWhenUsed = {
	name: 'amqplib-tls-when-used',
	setup(build) {
		build.onLoad({filter: /\/node_modules\/amqplib\/lib\/connect\.js$/}, async ({path}) => {
			const text = await readFile(path, 'utf8');
			if (text.split(AMQPLIB_TLS).length !== 2 || text.split('tls.connect(').length !== 2) {
				throw new Error(`${path}: expected one require of node:tls and one use (did amqplib change?)`);
			}

			return {contents: text.replace(AMQPLIB_TLS, "const tls = {connect: (...args) => require('node:tls').connect(...args)};"), loader: 'js'};
		});
	},
};
/**
 * The entry's fallbacks for a build without the bundles below (tsc's output run directly: cli.ts
 * imports the subcommands' ES modules, cli/run-tui.ts the TUI's): in dist/bin the bundles are there,
 * so the entry leaves those imports out, unresolved and never reached.
 */
const FALLBACKS = {'/dist/source/cli.js': ['./cli/run.js'], '/dist/source/cli/run-tui.js': ['../tui.js', '../tui-broker.js']};
const runnersFromTheirOwnBundles = {
	name: 'runners-from-their-own-bundles',
	setup(build) {
		build.onResolve({filter: /^\.\.?\//}, args =>
			args.kind === 'dynamic-import' && Object.entries(FALLBACKS).some(([importer, paths]) => args.importer.endsWith(importer) && paths.includes(args.path)) ? {path: args.path, external: true} : undefined,
		);
	},
};
// Clear out the last build's files.
await rm(`${root}/dist/bin`, {recursive: true, force: true});
/**
 * The entry, CommonJS: Node starts a CommonJS main without its ES module loader, ≈ 20 % of `node`'s
 * own start-up here (an empty .cjs against an empty .mjs). dist/bin/package.json says its .js files
 * are CommonJS (the package is "type": "module").
 */
const result = await build({
	absWorkingDir: root,
	entryPoints: {'kloud-tui': 'dist/source/cli.js'},
	outdir: 'dist/bin',
	bundle: true,
	format: 'cjs',
	platform: 'node',
	target: 'node20',
	plugins: [runnersFromTheirOwnBundles],
	// The sources find the bundles beside them through import.meta.url.
	define: {'import.meta.url': '__kloudModuleUrl'},
	banner: {js: "const __kloudModuleUrl = require('node:url').pathToFileURL(__filename).href;"},
	minify: true,
	sourcemap: 'linked',
	metafile: true,
	legalComments: 'linked',
	logLevel: 'warning',
});
await writeFile(`${root}/dist/bin/package.json`, `${JSON.stringify({type: 'commonjs'})}\n`);
/**
 * The code the entry runs through `vm.Script` with a V8 code cache (source/cli/code-cache.ts),
 * which ES modules cannot have on Node 20, each as one CommonJS file: the subcommands; the TUI
 * (Ink, React, yoga: everything its first frame needs, React's production build alone); and the
 * TUI's broker side (amqplib, zod, the feed), loaded after its first frame. None may hold an
 * `import()` (a vm.Script has no module loader: it throws), so none may be left out as external.
 */
const commonJs = async (name, entry, options = {}) =>
	build({
		absWorkingDir: root,
		entryPoints: {[name]: entry},
		outdir: 'dist/bin',
		outExtension: {'.js': '.cjs'},
		bundle: true,
		format: 'cjs',
		platform: 'node',
		target: 'node20',
		minify: true,
		sourcemap: 'linked',
		metafile: true,
		legalComments: 'linked',
		logLevel: 'warning',
		...options,
		plugins: [onlyEnglishZodLocale, amqplibTlsWhenUsed, ...(options.plugins ?? [])],
	});
const subcommands = await commonJs('subcommands', 'dist/source/cli/subcommands.js');
const tui = await commonJs('tui', 'dist/source/tui.js', {
	// Production React only: NODE_ENV is set before anything loads (source/production-env.ts), so the development build was dead weight to compile.
	define: {'process.env.NODE_ENV': '"production"'},
	alias: {'react-devtools-core': './scripts/bundle-empty.mjs'},
	plugins: [yogaSync, inkWithoutTopLevelAwait, lazyTextSetUp],
});
const tuiBroker = await commonJs('tui-broker', 'dist/source/tui-broker.js');
const outputs = {...result.metafile.outputs, ...subcommands.metafile.outputs, ...tui.metafile.outputs, ...tuiBroker.metafile.outputs};
await writeFile(`${root}/dist/bin/meta.json`, JSON.stringify({...result.metafile, outputs}));
