/**
 * The file side of capped logs (decisions in `log-cap.ts`): rotate a log that another process
 * appends to (copy its tail to `<log>.1`, truncate it), and read the last bytes across the two.
 * Rotations and reads of one log take turns, so a read never sees a half-rotated pair.
 */
import {open, rename, stat, truncate, writeFile} from 'node:fs/promises';
import {rotationDecision, tailPlan, type ByteRange} from './log-cap.js';

/** The older half of a capped log. */
export function rotatedPath(path: string): string {
	return `${path}.1`;
}

/** Operations under way per log path: each waits for the one before. */
const turns = new Map<string, Promise<unknown>>();

async function inTurn<T>(path: string, work: () => Promise<T>): Promise<T> {
	const before = turns.get(path) ?? Promise.resolve();
	const mine = before.then(work, work);
	const settled = mine.catch(() => {});
	turns.set(path, settled);
	try {
		return await mine;
	} finally {
		if (turns.get(path) === settled) {
			turns.delete(path);
		}
	}
}

/** Whether a log was rotated, and how many bytes of it were kept in `<log>.1`. */
export type RotationResult = {readonly isRotated: false} | {readonly isRotated: true; readonly keptBytes: number; readonly sizeBefore: number};

/**
 * Rotates `path` when `rotationDecision` says so. The writer must hold the file with O_APPEND
 * (the agent's console writer, dnsmasq's `--log-facility`): after the truncation its next write
 * goes to offset 0, not to a hole at its old offset. What the writer adds between the last read
 * and the truncation (microseconds) is lost, as with logrotate's `copytruncate`.
 */
export async function rotateLog(path: string, maxBytes: number): Promise<RotationResult> {
	// A rotation already waiting for this log will look at it anyway.
	if (turns.has(path)) {
		return {isRotated: false};
	}

	return inTurn(path, async () => rotateNow(path, maxBytes)).catch((error: unknown) => {
		// The log's VM went away meanwhile: nothing to cap.
		if (isRecord(error) && error.code === 'ENOENT') {
			return {isRotated: false} as const;
		}

		throw error;
	});
}

/** Resolves once no rotation or read of `path` is under way (before its directory is removed). */
export async function logSettled(path: string): Promise<void> {
	await turns.get(path);
}

async function rotateNow(path: string, maxBytes: number): Promise<RotationResult> {
	const size = (await stat(path).catch(() => undefined))?.size ?? 0;
	const decision = rotationDecision(size, maxBytes);
	if (decision.kind === 'keep') {
		return {isRotated: false};
	}

	const handle = await open(path, 'r');
	let kept: Buffer;
	let sizeBefore: number;
	try {
		const tail = await readRange(handle, {offset: size - decision.keepBytes, length: decision.keepBytes});
		// What came in while the tail was read, read again right before the truncation: only the
		// bytes written between this read and the truncation itself are lost.
		sizeBefore = (await handle.stat()).size;
		const late = sizeBefore > size ? await readRange(handle, {offset: size, length: sizeBefore - size}) : Buffer.alloc(0);
		await truncate(path, 0);
		kept = Buffer.concat([tail, late]);
	} finally {
		await handle.close();
	}

	const temporary = `${rotatedPath(path)}.tmp`;
	await writeFile(temporary, kept, {mode: 0o600});
	await rename(temporary, rotatedPath(path));
	return {isRotated: true, keptBytes: kept.length, sizeBefore};
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null;
}

/** The last bytes of a capped log and the size of both its files together. */
export type LogTail = {readonly data: Buffer; readonly sizeBytes: number};

/** The last `bytes` of `path`, continued from `<log>.1` across the last rotation; empty when neither exists. */
export async function readLogTail(path: string, bytes: number): Promise<LogTail> {
	return inTurn(path, async () => {
		const [current, rotated] = await Promise.all([openIfThere(path), openIfThere(rotatedPath(path))]);
		try {
			const currentSize = current ? (await current.stat()).size : 0;
			const rotatedSize = rotated ? (await rotated.stat()).size : 0;
			const plan = tailPlan(currentSize, rotatedSize, bytes);
			const parts = await Promise.all([rotated ? readRange(rotated, plan.rotated) : Buffer.alloc(0), current ? readRange(current, plan.current) : Buffer.alloc(0)]);
			return {data: Buffer.concat(parts), sizeBytes: currentSize + rotatedSize};
		} finally {
			await Promise.all([current?.close(), rotated?.close()]);
		}
	});
}

type Handle = Awaited<ReturnType<typeof open>>;

async function openIfThere(path: string): Promise<Handle | undefined> {
	return open(path, 'r').catch(() => undefined);
}

async function readRange(handle: Handle, range: ByteRange): Promise<Buffer> {
	const buffer = Buffer.alloc(range.length);
	let done = 0;
	while (done < range.length) {
		const {bytesRead} = await handle.read(buffer, done, range.length - done, range.offset + done);
		if (bytesRead === 0) {
			break;
		}

		done += bytesRead;
	}

	return buffer.subarray(0, done);
}
