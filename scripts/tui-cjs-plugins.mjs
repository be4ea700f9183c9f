/**
 * esbuild plugins that let the TUI (Ink 6, yoga-layout) be bundled as CommonJS, which cannot hold a
 * top-level await (scripts/bundle.mjs: the TUI runs as a `vm.Script` with a V8 code cache). Each
 * rewrite checks that the text it replaces is there exactly once, so an upgrade of Ink or yoga that
 * changes it fails the build instead of shipping a TUI that breaks at start.
 */
import {readFile} from 'node:fs/promises';

/** `text` with `from` replaced by `to`, which must occur exactly once in the file at `path`. */
function replaceOnce(text, from, to, path) {
	const count = text.split(from).length - 1;
	if (count !== 1) {
		throw new Error(`${path}: expected ${JSON.stringify(from.slice(0, 60))} once, found it ${count} times (did the package change?)`);
	}

	return text.replace(from, () => to);
}

const WASM_DATA_URL = /H="data:application\/octet-stream;base64,([A-Za-z\d+/=]+)"/;

/**
 * yoga-layout's entry is `wrapAssembly(await loadYoga())`: Emscripten's loader instantiates the
 * wasm binary (inlined as base64) asynchronously. Emscripten takes an `instantiateWasm` hook; given
 * one that compiles and instantiates synchronously (`new WebAssembly.Module/Instance`, ≈ 70 KB of
 * wasm), the whole module is ready when `loadYoga` returns, no await needed. The binary's base64
 * moves out of Emscripten's data URL (never read then) into an export of its own.
 */
export const yogaSync = {
	name: 'yoga-sync',
	setup(build) {
		build.onLoad({filter: /\/yoga-layout\/dist\/binaries\/yoga-wasm-base64-esm\.js$/}, async ({path}) => {
			let text = await readFile(path, 'utf8');
			const match = WASM_DATA_URL.exec(text);
			if (!match) {
				throw new Error(`${path}: no inlined wasm binary (did yoga-layout change?)`);
			}

			text = replaceOnce(text, match[0], 'H=""', path);
			// The script's own URL, for a binary next to it: not used with the binary inlined (and no import.meta in CommonJS).
			text = replaceOnce(text, 'var _scriptDir = import.meta.url;', 'var _scriptDir = undefined;', path);
			return {contents: `${text}\nexport const yogaWasmBase64 = ${JSON.stringify(match[1])};\n`, loader: 'js'};
		});
		build.onLoad({filter: /\/yoga-layout\/dist\/src\/index\.js$/}, async ({path}) => {
			const text = await readFile(path, 'utf8');
			const contents = replaceOnce(
				replaceOnce(text, "import loadYoga from '../binaries/yoga-wasm-base64-esm.js';", "import loadYoga, {yogaWasmBase64} from '../binaries/yoga-wasm-base64-esm.js';", path),
				'const Yoga = wrapAssembly(await loadYoga());',
				`const yogaModule = {
	instantiateWasm(imports, receiveInstance) {
		const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(yogaWasmBase64, 'base64')), imports);
		receiveInstance(instance);
		return instance.exports;
	},
};
loadYoga(yogaModule);
if (!yogaModule.calledRun) {
	throw new Error('yoga-layout did not start synchronously');
}
const Yoga = wrapAssembly(yogaModule);`,
				path,
			);
			return {contents, loader: 'js'};
		});
	},
};

/**
 * Ink's reconciler awaits two imports at its top level, both only with `DEV=true`: React DevTools
 * (not in kloud-tui's bundle: Ink then warns that it is not installed, as it does without the
 * package) and Ink's package.json (its version, for DevTools).
 */
export const inkWithoutTopLevelAwait = {
	name: 'ink-without-top-level-await',
	setup(build) {
		build.onLoad({filter: /\/ink\/build\/reconciler\.js$/}, async ({path}) => {
			let text = await readFile(path, 'utf8');
			text = replaceOnce(text, "await import('./devtools.js');", "throw Object.assign(new Error('React DevTools are not in the kloud-tui bundle'), {code: 'ERR_MODULE_NOT_FOUND'});", path);
			text = replaceOnce(text, '? await loadPackageJson()', '? {name: undefined, version: undefined}', path);
			return {contents: text, loader: 'js'};
		});
	},
};
