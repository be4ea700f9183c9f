/**
 * The immutable, content-addressed copies of the base images (`bases.ts` has the decisions): finds
 * or makes `<images>/.bases/<sha256>.qcow2` for an image, marks which VMs use which base, and
 * removes the bases nothing uses any more. Only file-system calls, no external commands.
 *
 * Several agents may share one images directory (the demo's three hosts do): a base is shared too,
 * so who uses it is written down in `.bases/users/<sha>/` (one marker file per VM and agent), where
 * every agent sharing the directory sees it, and the clean-up never removes a base with a marker.
 */
import {createHash, randomBytes} from 'node:crypto';
import {constants, createReadStream} from 'node:fs';
import {chmod, copyFile, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import type {Logger} from 'pino';
import {arrivalBaseProblem, BASES_DIR, baseFileSha, basePath, HASHES_FILE, HashCache, identityKey, isStaleTemporary, markerName, markerVm, removableBases, USERS_DIR, type BaseUse} from './bases.js';

/** A migration in whose VM's base this host has not got, and whose image here has other content. */
export class BaseMismatchError extends Error {
	override name = 'BaseMismatchError';
}

/** A base found or made for one VM; pinned (safe from the clean-up) until `release`, by when the VM's overlay names it. */
export type AcquiredBase = {readonly path: string; readonly sha256: string; release(): void};

export type BaseStoreOptions = {
	readonly imagesDir: string;
	/** The agent's state root: a marker whose VM has no directory there any more is stale. */
	readonly stateRoot: string;
	/** Tells this agent's markers from those of other agents sharing the images directory. */
	readonly agentKey: string;
	readonly hostId: string;
	readonly log: Logger;
};

/** How often an image that keeps changing while it is hashed or copied is tried again. */
const TRIES = 3;

export class BaseStore {
	readonly #options: BaseStoreOptions;
	readonly #dir: string;
	readonly #cache = new HashCache();
	#isCacheLoaded = false;
	/** Hashes under way, by file identity: concurrent starts of one new image hash it once. */
	readonly #hashing = new Map<string, Promise<string>>();
	/** Bases (sha → count) and VMs taken by acquisitions not yet released. */
	readonly #pinned = new Map<string, number>();
	readonly #pinnedVms = new Map<string, number>();
	/** Copies and removals of bases, one at a time. */
	#lock: Promise<unknown> = Promise.resolve();

	constructor(options: BaseStoreOptions) {
		this.#options = options;
		this.#dir = join(options.imagesDir, BASES_DIR);
	}

	/**
	 * The base for VM `vmId` made from image `image`: its current content (`sha256` undefined), or the
	 * content `sha256` (a migration in): that base if this host has it, else this host's image when
	 * it has that very content, else a `BaseMismatchError`. Marks the base as the VM's.
	 */
	async acquire(image: string, vmId: string, options: {readonly sha256?: string} = {}): Promise<AcquiredBase> {
		const source = join(this.#options.imagesDir, `${image}.qcow2`);
		for (let attempt = 1; ; attempt++) {
			const wanted = options.sha256;
			// eslint-disable-next-line no-await-in-loop
			const hasWanted = wanted !== undefined && (await exists(basePath(this.#options.imagesDir, wanted)));
			// eslint-disable-next-line no-await-in-loop
			const sha256 = hasWanted ? wanted : await this.imageSha(source);
			if (wanted !== undefined) {
				const problem = arrivalBaseProblem({hostId: this.#options.hostId, image, wanted, hasBase: hasWanted, imageSha: sha256});
				if (problem) {
					throw new BaseMismatchError(problem);
				}
			}

			const release = this.pin(sha256, vmId);
			try {
				// eslint-disable-next-line no-await-in-loop
				await this.mark(sha256, vmId);
				// eslint-disable-next-line no-await-in-loop
				const path = await this.locked(async () => this.ensure(source, sha256));
				if (path !== undefined) {
					return {path, sha256, release};
				}
			} catch (error) {
				release();
				throw error;
			}

			// The image changed since it was hashed: forget the mark and hash it again.
			release();
			// eslint-disable-next-line no-await-in-loop
			await this.unmark(sha256, vmId);
			if (attempt >= TRIES) {
				throw new Error(`image ${image} kept changing while its base was being made: try again once it is written`);
			}
		}
	}

	/** The sha256 of an image file's content (symlinks followed), hashed once per file identity. */
	async imageSha(path: string): Promise<string> {
		await this.loadCache();
		for (let attempt = 1; ; attempt++) {
			// eslint-disable-next-line no-await-in-loop
			const before = await stat(path, {bigint: true});
			const key = identityKey(before);
			const cached = this.#cache.get(key);
			if (cached !== undefined) {
				return cached;
			}

			let hashing = this.#hashing.get(key);
			if (!hashing) {
				hashing = (async () => {
					const started = performance.now();
					const sha256 = await hashFile(path);
					const after = await stat(path, {bigint: true});
					if (identityKey(after) !== key) {
						throw new ChangedWhileReadError();
					}

					this.#cache.set(key, sha256);
					await this.saveCache();
					this.#options.log.info({path, sha256, bytes: Number(before.size), ms: Math.round(performance.now() - started)}, 'image hashed');
					return sha256;
				})().finally(() => this.#hashing.delete(key));
				this.#hashing.set(key, hashing);
			}

			try {
				// eslint-disable-next-line no-await-in-loop
				return await hashing;
			} catch (error) {
				if (!(error instanceof ChangedWhileReadError) || attempt >= TRIES) {
					throw error instanceof ChangedWhileReadError ? new Error(`${path} kept changing while it was hashed: try again once it is written`) : error;
				}
			}
		}
	}

	/**
	 * Removes this agent's markers of VMs that are gone (no directory in the state root), then every
	 * base no VM of any agent marks, no acquisition here holds and no image currently has.
	 */
	async collect(): Promise<{readonly removed: string[]}> {
		const {agentKey, stateRoot, imagesDir, log} = this.#options;
		return this.locked(async () => {
			const names = await readdir(this.#dir).catch(() => [] as string[]);
			const shas = names.flatMap(name => baseFileSha(name) ?? []);
			for (const name of names) {
				const info = await stat(join(this.#dir, name)).catch(() => undefined);
				if (info?.isFile() && isStaleTemporary(name, info.mtimeMs, Date.now())) {
					log.warn({file: name}, 'removing a temporary base file left by an agent that died mid-copy');
					await rm(join(this.#dir, name), {force: true});
				}
			}

			const users = await readdir(join(this.#dir, USERS_DIR)).catch(() => [] as string[]);
			for (const sha of users) {
				const markers = await readdir(join(this.#dir, USERS_DIR, sha)).catch(() => [] as string[]);
				for (const marker of markers) {
					const vmId = markerVm(agentKey, marker);
					if (vmId !== undefined && !this.#pinnedVms.has(vmId) && !(await exists(join(stateRoot, vmId)))) {
						await unlink(join(this.#dir, USERS_DIR, sha, marker)).catch(() => {});
					}
				}
			}

			const current = await this.currentImageShas(shas);
			const uses: BaseUse[] = await Promise.all(
				shas.map(async sha256 => ({sha256, markers: await this.markerCount(sha256), isPinned: this.#pinned.has(sha256), isCurrentImage: current.has(sha256)})),
			);
			const removed: string[] = [];
			for (const sha256 of removableBases(uses)) {
				// Out of the way first, then looked at again: a marker another agent wrote meanwhile puts it back.
				const path = basePath(imagesDir, sha256);
				const trash = join(this.#dir, `.trash-${sha256}-${randomBytes(4).toString('hex')}`);
				if (!(await rename(path, trash).then(() => true, () => false))) {
					continue;
				}

				if ((await this.markerCount(sha256)) > 0 || this.#pinned.has(sha256)) {
					await rename(trash, path);
					continue;
				}

				await rm(trash, {force: true});
				await rmdir(join(this.#dir, USERS_DIR, sha256)).catch(() => {});
				removed.push(sha256);
			}

			if (removed.length > 0) {
				log.info({removed}, 'bases no VM uses removed');
			}

			return {removed};
		});
	}

	/** Which of `shas` some `<images>/<name>.qcow2` has as its content now (an image of another size cannot be one of them: not hashed). */
	private async currentImageShas(shas: readonly string[]): Promise<Set<string>> {
		const current = new Set<string>();
		if (shas.length === 0) {
			return current;
		}

		const sizes = new Set(await Promise.all(shas.map(async sha => (await stat(basePath(this.#options.imagesDir, sha)).catch(() => undefined))?.size)));
		const entries = await readdir(this.#options.imagesDir).catch(() => [] as string[]);
		for (const name of entries) {
			if (!name.endsWith('.qcow2') || name.startsWith('.')) {
				continue;
			}

			const path = join(this.#options.imagesDir, name);
			const info = await stat(path).catch(() => undefined);
			if (!info?.isFile() || !sizes.has(info.size)) {
				continue;
			}

			const sha = await this.imageSha(path).catch(() => undefined);
			if (sha !== undefined) {
				current.add(sha);
			}
		}

		return current;
	}

	private async markerCount(sha256: string): Promise<number> {
		return (await readdir(join(this.#dir, USERS_DIR, sha256)).catch(() => [] as string[])).length;
	}

	private async mark(sha256: string, vmId: string): Promise<void> {
		const dir = join(this.#dir, USERS_DIR, sha256);
		await mkdir(dir, {recursive: true, mode: 0o755});
		await writeFile(join(dir, markerName(this.#options.agentKey, vmId)), `${this.#options.hostId} ${this.#options.stateRoot}\n`);
	}

	private async unmark(sha256: string, vmId: string): Promise<void> {
		await unlink(join(this.#dir, USERS_DIR, sha256, markerName(this.#options.agentKey, vmId))).catch(() => {});
	}

	/** Holds `sha256` (and the VM's markers) against the clean-up; the returned function lets go (once). */
	private pin(sha256: string, vmId: string): () => void {
		this.#pinned.set(sha256, (this.#pinned.get(sha256) ?? 0) + 1);
		this.#pinnedVms.set(vmId, (this.#pinnedVms.get(vmId) ?? 0) + 1);
		let isReleased = false;
		return () => {
			if (isReleased) {
				return;
			}

			isReleased = true;
			decrement(this.#pinned, sha256);
			decrement(this.#pinnedVms, vmId);
		};
	}

	/**
	 * The base of content `sha256`, made from `source` if it is missing: a copy (a reflink where the
	 * file system can) to a temporary name, hashed, flushed, made read-only and renamed into place.
	 * Undefined when the copy's content is not `sha256` (the image changed since it was hashed).
	 */
	private async ensure(source: string, sha256: string): Promise<string | undefined> {
		const path = basePath(this.#options.imagesDir, sha256);
		if (await exists(path)) {
			return path;
		}

		await mkdir(this.#dir, {recursive: true, mode: 0o755});
		const temporary = join(this.#dir, `.tmp-${sha256}-${randomBytes(4).toString('hex')}`);
		const started = performance.now();
		try {
			await copyFile(source, temporary, constants.COPYFILE_FICLONE);
			const copied = await hashFile(temporary);
			if (copied !== sha256) {
				await rm(temporary, {force: true});
				return undefined;
			}

			const handle = await open(temporary, 'r');
			await handle.sync().finally(async () => handle.close());
			await chmod(temporary, 0o444);
			await rename(temporary, path);
		} catch (error) {
			await rm(temporary, {force: true});
			throw error;
		}

		this.#options.log.info({source, path, ms: Math.round(performance.now() - started)}, 'base made');
		return path;
	}

	private async locked<T>(work: () => Promise<T>): Promise<T> {
		const result = this.#lock.then(work);
		this.#lock = result.catch(() => {});
		return result;
	}

	private async loadCache(): Promise<void> {
		if (this.#isCacheLoaded) {
			return;
		}

		this.#isCacheLoaded = true;
		try {
			this.#cache.load(JSON.parse(await readFile(join(this.#dir, HASHES_FILE), 'utf8')));
		} catch {
			// No cache yet, or a torn one: images are hashed again.
		}
	}

	private async saveCache(): Promise<void> {
		try {
			await mkdir(this.#dir, {recursive: true, mode: 0o755});
			const temporary = join(this.#dir, `.${HASHES_FILE}-${randomBytes(4).toString('hex')}`);
			await writeFile(temporary, JSON.stringify(this.#cache.toJSON()));
			await rename(temporary, join(this.#dir, HASHES_FILE));
		} catch (error) {
			this.#options.log.debug({err: error}, 'hash cache not saved');
		}
	}
}

class ChangedWhileReadError extends Error {}

function decrement(counts: Map<string, number>, key: string): void {
	const count = (counts.get(key) ?? 1) - 1;
	if (count <= 0) {
		counts.delete(key);
	} else {
		counts.set(key, count);
	}
}

async function exists(path: string): Promise<boolean> {
	return stat(path).then(
		() => true,
		() => false,
	);
}

async function hashFile(path: string): Promise<string> {
	const hash = createHash('sha256');
	for await (const chunk of createReadStream(path, {highWaterMark: 1024 * 1024})) {
		hash.update(chunk as Buffer);
	}

	return hash.digest('hex');
}
