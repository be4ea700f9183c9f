/**
 * Loads a CommonJS bundle (the subcommands' zod + amqplib + kloud code) through `vm.Script` with a
 * V8 code cache, since Node 20 has no compile cache of its own: compiling that bundle is most of
 * what a `kloud-tui list` costs above `node -e 0`. The cache is written after a run that had none
 * (so it holds the functions the run compiled, not just the top level) to the user's cache directory;
 * the install directory may be read-only.
 *
 * A cache must never break the CLI: V8 checks only its own version, its flags and the source's
 * length, and a corrupt payload that passes those crashes the process or runs the wrong code. So
 * each cache file carries a checksum of the source it was made from and of its own payload; any
 * mismatch, unreadable file or V8 rejection means compiling without it (and writing a fresh one).
 */
import {createHash} from 'node:crypto';
import {closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {homedir} from 'node:os';
import {basename, dirname, join} from 'node:path';
import vm from 'node:vm';

const MAGIC = Buffer.from('kloud-v8-cache-1');
const HASH_BYTES = 32;
const HEADER_BYTES = MAGIC.length + 2 * HASH_BYTES;
/** Caches of older builds (another bundle hash or Node version) are removed when a new one is written, once this old. */
const STALE_MS = 7 * 24 * 60 * 60 * 1000;

export type CacheOutcome = 'none' | 'used' | 'rejected' | 'disabled';

export type LoadedBundle<T> = {
	readonly exports: T;
	/** What happened to the cache on this load (for the benchmarks and the tests). */
	readonly cache: CacheOutcome;
	/** Writes a cache when this load had no usable one; never throws. Call it once the work is done. */
	save(): void;
};

/**
 * The directory for code caches: `KLOUD_CACHE_DIR` (empty: no cache), else `$XDG_CACHE_HOME/kloud`,
 * else `~/.cache/kloud`.
 */
export function cacheDirectory(env: NodeJS.ProcessEnv): string | undefined {
	if (env.KLOUD_CACHE_DIR !== undefined) {
		return env.KLOUD_CACHE_DIR === '' ? undefined : env.KLOUD_CACHE_DIR;
	}

	const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
	return join(base, 'kloud');
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();

/**
 * The cache's payload if `file` is a sound cache for a source hashing to `sourceHash`, and is this
 * user's own and writable by nobody else: V8 runs a cache's bytecode as it finds it, so a cache
 * someone else could have written (a `KLOUD_CACHE_DIR` in /tmp) would run their code.
 */
function readCache(file: string, sourceHash: Buffer): Buffer | undefined {
	let bytes: Buffer;
	let descriptor: number | undefined;
	try {
		descriptor = openSync(file, 'r');
		const info = fstatSync(descriptor);
		if (info.uid !== process.getuid?.() || (info.mode & 0o022) !== 0) {
			return undefined;
		}

		bytes = readFileSync(descriptor);
	} catch {
		return undefined;
	} finally {
		if (descriptor !== undefined) {
			closeSync(descriptor);
		}
	}

	if (bytes.length <= HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
		return undefined;
	}

	const payload = bytes.subarray(HEADER_BYTES);
	const recordedSource = bytes.subarray(MAGIC.length, MAGIC.length + HASH_BYTES);
	const recordedPayload = bytes.subarray(MAGIC.length + HASH_BYTES, HEADER_BYTES);
	return recordedSource.equals(sourceHash) && recordedPayload.equals(sha256(payload)) ? payload : undefined;
}

function writeCache(file: string, sourceHash: Buffer, payload: Buffer): void {
	const directory = dirname(file);
	// Two levels by hand (`~/.cache`, then `kloud`): a recursive mkdir under /proc spins for ever on Node 20.
	for (const level of [dirname(directory), directory]) {
		try {
			mkdirSync(level, {mode: 0o700});
		} catch {}
	}

	// Written whole, then renamed: a concurrent run reads the old file or the new one, never half of one.
	const temporary = `${file}.${process.pid}.tmp`;
	try {
		writeFileSync(temporary, Buffer.concat([MAGIC, sourceHash, sha256(payload), payload]), {mode: 0o644});
		renameSync(temporary, file);
	} catch (error) {
		// A full disk: no half-written file left behind.
		try {
			unlinkSync(temporary);
		} catch {}

		throw error;
	}

	const prefix = `${basename(file).split('-')[0]!}-`;
	for (const name of readdirSync(directory)) {
		const path = join(directory, name);
		if (name.startsWith(prefix) && path !== file) {
			try {
				if (Date.now() - statSync(path).mtimeMs > STALE_MS) {
					unlinkSync(path);
				}
			} catch {}
		}
	}
}

/**
 * Loads the CommonJS bundle at `path` (which must require only Node's built-ins or absolute paths),
 * using and making a code cache in `cacheDir` (undefined: no cache).
 */
export function loadBundle<T>(path: string, cacheDir: string | undefined): LoadedBundle<T> {
	const source = readFileSync(path);
	const sourceHash = sha256(source);
	const name = basename(path).replace(/\.c?js$/, '');
	const cacheFile = cacheDir === undefined ? undefined : join(cacheDir, `${name}-${sourceHash.toString('hex').slice(0, 16)}-${process.version}-${process.arch}.v8`);
	const cachedData = cacheFile === undefined ? undefined : readCache(cacheFile, sourceHash);
	// The wrapper Node's own CommonJS loader puts around a module.
	const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source.toString('utf8')}\n})`, {
		filename: path,
		...(cachedData === undefined ? {} : {cachedData}),
	});
	const cache: CacheOutcome = cacheFile === undefined ? 'disabled' : cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used';
	const module = {exports: {} as T};
	(script.runInThisContext() as (...args: unknown[]) => void).call(module.exports, module.exports, createRequire(path), module, path, dirname(path));
	let isSaved = cache === 'used' || cache === 'disabled';
	return {
		exports: module.exports,
		cache,
		save() {
			if (isSaved || cacheFile === undefined) {
				return;
			}

			isSaved = true;
			try {
				writeCache(cacheFile, sourceHash, script.createCachedData());
			} catch {
				// No cache directory we may write (a read-only home, a full disk): run without one.
			}
		},
	};
}
