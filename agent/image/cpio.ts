/**
 * A writer for the `newc` cpio format, the one the Linux kernel unpacks as an initramfs. Pure: entries
 * in, bytes out. Written here rather than run through `cpio(1)` so that owners, modes and device nodes
 * (`/dev/console`) are exact without root, and the archive is byte-for-byte reproducible.
 */

/** One member of an archive. Paths are relative to the archive's root (`bin/busybox`, no leading `/`). */
export type CpioEntry =
	| {readonly type: 'directory'; readonly path: string; readonly mode?: number}
	| {readonly type: 'file'; readonly path: string; readonly data: Uint8Array; readonly mode?: number}
	| {readonly type: 'symlink'; readonly path: string; readonly target: string}
	| {readonly type: 'char-device'; readonly path: string; readonly major: number; readonly minor: number; readonly mode?: number};

/** Thrown for an entry the format cannot hold: an empty, absolute or `..` path, or a path given twice. */
export class CpioEntryError extends Error {
	override name = 'CpioEntryError';
}

const MAGIC = '070701';
const TRAILER = 'TRAILER!!!';
const S_IFDIR = 0o040_000;
const S_IFREG = 0o100_000;
const S_IFLNK = 0o120_000;
const S_IFCHR = 0o020_000;

/**
 * Builds a `newc` archive of `entries`, in their order, owned by root with mtime 0. A directory that
 * an entry needs and that was not listed before it is added first (mode 0755): the kernel creates
 * files only inside directories that already exist.
 */
export function createCpioArchive(entries: readonly CpioEntry[]): Buffer {
	const chunks: Buffer[] = [];
	const seen = new Set<string>();
	let inode = 0;

	const push = (path: string, mode: number, data: Uint8Array, device: {major: number; minor: number} = {major: 0, minor: 0}): void => {
		inode += 1;
		const isDirectory = (mode & 0o170_000) === S_IFDIR;
		chunks.push(header({inode, mode, nlink: isDirectory ? 2 : 1, size: data.length, device, nameSize: Buffer.byteLength(path) + 1}));
		chunks.push(pad(Buffer.from(`${path}\0`), 110));
		chunks.push(pad(Buffer.from(data), 0));
	};

	for (const entry of entries) {
		const path = checkPath(entry.path);
		if (seen.has(path)) {
			throw new CpioEntryError(`cpio: ${path} is listed twice`);
		}

		const parts = path.split('/');
		for (let index = 1; index < parts.length; index++) {
			const parent = parts.slice(0, index).join('/');
			if (!seen.has(parent)) {
				seen.add(parent);
				push(parent, S_IFDIR | 0o755, new Uint8Array());
			}
		}

		seen.add(path);
		switch (entry.type) {
			case 'directory': {
				push(path, S_IFDIR | (entry.mode ?? 0o755), new Uint8Array());
				break;
			}

			case 'file': {
				push(path, S_IFREG | (entry.mode ?? 0o644), entry.data);
				break;
			}

			case 'symlink': {
				push(path, S_IFLNK | 0o777, Buffer.from(entry.target));
				break;
			}

			case 'char-device': {
				push(path, S_IFCHR | (entry.mode ?? 0o600), new Uint8Array(), {major: entry.major, minor: entry.minor});
				break;
			}

			default: {
				assertNever(entry);
			}
		}
	}

	chunks.push(header({inode: 0, mode: 0, nlink: 1, size: 0, device: {major: 0, minor: 0}, nameSize: TRAILER.length + 1}));
	chunks.push(pad(Buffer.from(`${TRAILER}\0`), 110));
	return Buffer.concat(chunks);
}

function checkPath(path: string): string {
	const parts = path.split('/');
	if (path === '' || path.startsWith('/') || parts.some(part => part === '' || part === '.' || part === '..')) {
		throw new CpioEntryError(`cpio: invalid path "${path}": use a relative path without empty, . or .. parts`);
	}

	return path;
}

type HeaderFields = {
	inode: number;
	mode: number;
	nlink: number;
	size: number;
	device: {major: number; minor: number};
	nameSize: number;
};

function header(fields: HeaderFields): Buffer {
	// ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	const values = [fields.inode, fields.mode, 0, 0, fields.nlink, 0, fields.size, 0, 0, fields.device.major, fields.device.minor, fields.nameSize, 0];
	return Buffer.from(MAGIC + values.map(value => value.toString(16).padStart(8, '0')).join(''), 'ascii');
}

/** Pads `data` with NULs so that `offset + data` ends on a 4-byte boundary (newc aligns names and data). */
function pad(data: Buffer, offset: number): Buffer {
	const remainder = (offset + data.length) % 4;
	return remainder === 0 ? data : Buffer.concat([data, Buffer.alloc(4 - remainder)]);
}

function assertNever(value: never): never {
	throw new CpioEntryError(`cpio: unknown entry ${JSON.stringify(value)}`);
}
