/**
 * Content-addressed, immutable base images: pure decisions (`base-store.ts` does the file work).
 * A VM's overlay is backed by `<images>/.bases/<sha256>.qcow2`, a read-only copy of the content its
 * image had when the VM was made, never by `<images>/<name>.qcow2` itself: an operator who replaces
 * an image (in place with `cp`, or with `mv`) changes what new VMs get, never the disk of a VM that
 * exists.
 */
import {join} from 'node:path';

/** The directory, inside the images directory, that holds the immutable copies (a dot name: never listed as an image). */
export const BASES_DIR = '.bases';
/** Inside `BASES_DIR`: one directory per base, one marker file per VM (of any agent sharing the images directory) on it. */
export const USERS_DIR = 'users';
/** Inside `BASES_DIR`: the hash cache, so a restarted agent does not hash its images again. */
export const HASHES_FILE = 'hashes.json';

const SHA256_PATTERN = /^[\da-f]{64}$/;
const BASE_FILE_PATTERN = /^([\da-f]{64})\.qcow2$/;

/** Whether `value` is a sha256 in lower-case hex. */
export function isSha256(value: string): boolean {
	return SHA256_PATTERN.test(value);
}

/** Where the base of content `sha256` lives. */
export function basePath(imagesDir: string, sha256: string): string {
	return join(imagesDir, BASES_DIR, `${sha256}.qcow2`);
}

/** The sha256 of a base file's name (`<sha>.qcow2`), or undefined for anything else (temporary files, the cache, markers). */
export function baseFileSha(name: string): string | undefined {
	return BASE_FILE_PATTERN.exec(name)?.[1];
}

/**
 * The sha256 of the base an overlay's backing file names (`…/.bases/<sha>.qcow2`); undefined for an
 * overlay made before content-addressed bases (backed by `<images>/<name>.qcow2` directly).
 */
export function backingSha(backingFile: string | undefined): string | undefined {
	if (backingFile === undefined) {
		return undefined;
	}

	const parts = backingFile.split('/');
	return parts.at(-2) === BASES_DIR ? baseFileSha(parts.at(-1) ?? '') : undefined;
}

/** What identifies one content of a file without reading it: device, inode, size and modification time (ns). */
export type FileIdentity = {readonly dev: bigint; readonly ino: bigint; readonly size: bigint; readonly mtimeNs: bigint};

/**
 * The hash cache's key. Any write to the file changes its mtime, a `mv` its inode: a key seen
 * before means content hashed before. (Only a write that puts the mtime back by hand defeats it.)
 */
export function identityKey(identity: FileIdentity): string {
	return `${identity.dev}:${identity.ino}:${identity.size}:${identity.mtimeNs}`;
}

/** File identity → sha256, the newest `capacity` entries (a replaced image's old key is never seen again). */
export class HashCache {
	readonly #entries = new Map<string, string>();
	readonly #capacity: number;

	constructor(capacity = 64) {
		this.#capacity = capacity;
	}

	get(key: string): string | undefined {
		return this.#entries.get(key);
	}

	set(key: string, sha256: string): void {
		this.#entries.delete(key);
		this.#entries.set(key, sha256);
		while (this.#entries.size > this.#capacity) {
			this.#entries.delete(this.#entries.keys().next().value!);
		}
	}

	delete(key: string): void {
		this.#entries.delete(key);
	}

	get size(): number {
		return this.#entries.size;
	}

	/** The entries, oldest first (what the sidecar file holds). */
	toJSON(): Array<[string, string]> {
		return [...this.#entries];
	}

	/** Adds the entries of a sidecar file; anything malformed is skipped (it is only a cache). */
	load(raw: unknown): void {
		if (!Array.isArray(raw)) {
			return;
		}

		for (const entry of raw) {
			if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'string' && isSha256(entry[1])) {
				this.set(entry[0], entry[1]);
			}
		}
	}
}

/** How old a temporary copy (`.tmp-…`) or a base being removed (`.trash-…`) must be to count as left by a crash. */
export const STALE_TEMPORARY_MS = 60 * 60_000;

/**
 * Whether a file in `.bases` is a temporary left behind by an agent that died mid-copy or
 * mid-removal: a copy under way (maybe another agent's, of a large image) is written to all the
 * time, so only one untouched for `STALE_TEMPORARY_MS` goes.
 */
export function isStaleTemporary(name: string, mtimeMs: number, nowMs: number): boolean {
	return (name.startsWith('.tmp-') || name.startsWith('.trash-')) && nowMs - mtimeMs > STALE_TEMPORARY_MS;
}

/** What the clean-up knows about one base in `.bases`. */
export type BaseUse = {
	readonly sha256: string;
	/** VM markers on it, of any agent sharing the images directory. */
	readonly markers: number;
	/** Being taken by a start or a migration in under way on this agent. */
	readonly isPinned: boolean;
	/** The current content of some `<images>/<name>.qcow2` (kept: the next start of that image needs it). */
	readonly isCurrentImage: boolean;
};

/** The bases the clean-up removes: used by no VM (no marker), by no start under way, and no image's current content. */
export function removableBases(bases: readonly BaseUse[]): string[] {
	return bases.filter(base => base.markers === 0 && !base.isPinned && !base.isCurrentImage).map(base => base.sha256).sort();
}

/**
 * A VM marker's file name: `<agent key>.<vm id>` (the agent key tells agents sharing one images
 * directory apart; a VM migrating between two of them has one marker of each while both hold it).
 */
export function markerName(agentKey: string, vmId: string): string {
	return `${agentKey}.${vmId}`;
}

/** The VM of a marker of agent `agentKey`, or undefined when the marker is another agent's. */
export function markerVm(agentKey: string, name: string): string | undefined {
	return name.startsWith(`${agentKey}.`) ? name.slice(agentKey.length + 1) : undefined;
}

/**
 * A destination's answer to a migration in that names the VM's base: undefined when it can take the
 * VM on that very content (it holds the base, or its image hashes to it), else why not.
 */
export function arrivalBaseProblem(input: {readonly hostId: string; readonly image: string; readonly wanted: string; readonly hasBase: boolean; readonly imageSha: string | undefined}): string | undefined {
	if (input.hasBase || input.imageSha === input.wanted) {
		return undefined;
	}

	return `host ${input.hostId}'s image ${input.image} differs from the VM's base (sha256 ${input.wanted}${input.imageSha === undefined ? '' : `, the image's is ${input.imageSha}`})`;
}
