#!/usr/bin/env node
/**
 * Bundles `kloud-tui` (after tsc) into dist/bin/: one entry that parses the command line, and chunks
 * loaded only when needed (a subcommand's zod + amqplib; the TUI's Ink + React). Node 20 has no
 * compile cache, so start-up is mostly resolving and compiling modules: as ~300 ESM files Ink alone
 * took ≈ 0.8 s to import here, bundled ≈ 0.2 s. `dist/bin/meta.json` says which sources each output
 * holds (the module-graph test reads it).
 */
import {build} from 'esbuild';
import {rm, writeFile} from 'node:fs/promises';
import {fileURLToPath} from 'node:url';

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
// Chunk names carry content hashes: clear out the last build's.
await rm(`${root}/dist/bin`, {recursive: true, force: true});
const result = await build({
	absWorkingDir: root,
	entryPoints: {'kloud-tui': 'dist/source/cli.js'},
	outdir: 'dist/bin',
	bundle: true,
	splitting: true,
	format: 'esm',
	platform: 'node',
	target: 'node20',
	// Only the TUI's own hook loads it, and only with DEV=true: not something an operator's binary ships.
	alias: {'react-devtools-core': './scripts/bundle-empty.mjs'},
	plugins: [onlyEnglishZodLocale],
	minify: true,
	// CommonJS packages bundled into ESM (amqplib, React) call require() for Node's built-ins.
	banner: {js: "import {createRequire as __kloudCreateRequire} from 'node:module'; const require = __kloudCreateRequire(import.meta.url);"},
	sourcemap: 'linked',
	metafile: true,
	legalComments: 'linked',
	logLevel: 'warning',
});
/**
 * The subcommands once more, as one CommonJS file: the entry compiles it through `vm.Script` with a
 * V8 code cache (source/cli/code-cache.ts), which ES modules cannot have on Node 20. The TUI is
 * never reached from it (the entry imports the TUI itself), so its import stays out.
 */
const subcommands = await build({
	absWorkingDir: root,
	entryPoints: {subcommands: 'dist/source/cli/subcommands.js'},
	outdir: 'dist/bin',
	outExtension: {'.js': '.cjs'},
	bundle: true,
	format: 'cjs',
	platform: 'node',
	target: 'node20',
	external: ['../tui.js'],
	plugins: [onlyEnglishZodLocale],
	minify: true,
	sourcemap: 'linked',
	metafile: true,
	legalComments: 'linked',
	logLevel: 'warning',
});
const outputs = {...result.metafile.outputs, ...subcommands.metafile.outputs};
await writeFile(`${root}/dist/bin/meta.json`, JSON.stringify({...result.metafile, outputs}));
