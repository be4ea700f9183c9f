/**
 * Pure decisions for the logs the agent caps (a VM's serial console, dnsmasq's log): when to rotate,
 * how much to keep, and which bytes of the two files make up "the last N bytes". The writer (QEMU,
 * dnsmasq) keeps the file open with O_APPEND, so the agent copies the tail to `<log>.1` and truncates
 * the log: the writer's next line lands at the new end. The file I/O is in `log-files.ts`.
 */

/** Default cap of one VM's console (`console.log` + `console.log.1`), in bytes. */
export const DEFAULT_CONSOLE_LOG_MAX_BYTES = 1024 * 1024;

/** Default cap of the private network's dnsmasq log (`dnsmasq.log` + `.1`), in bytes. */
export const DEFAULT_DNSMASQ_LOG_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Smallest cap accepted: each half must hold the longest console read (128 KiB), so a read of the
 * last N bytes always finds them across the two files.
 */
export const MIN_LOG_MAX_BYTES = 256 * 1024;

/** What to do with a log of `size` bytes under a cap of `maxBytes` (both files together). */
export type RotationDecision =
	| {readonly kind: 'keep'}
	/** Copy the log's last `keepBytes` to `<log>.1` (replacing it), then truncate the log. */
	| {readonly kind: 'rotate'; readonly keepBytes: number};

/**
 * The log rotates once it reaches half the cap, keeping at most half the cap in `.1`: the two files
 * then hold at most the cap, plus what is written between two checks, and always at least half
 * the cap of the newest output once the log has rotated.
 */
export function rotationDecision(size: number, maxBytes: number): RotationDecision {
	const half = Math.floor(maxBytes / 2);
	if (size < half || size === 0) {
		return {kind: 'keep'};
	}

	return {kind: 'rotate', keepBytes: Math.min(size, half)};
}

/** A byte range of one file. */
export type ByteRange = {readonly offset: number; readonly length: number};

/** Where the last `bytes` of the console are: first from `<log>.1`, then from the log itself. */
export type TailPlan = {readonly rotated: ByteRange; readonly current: ByteRange};

/** The ranges of `<log>.1` (size `rotatedSize`) and the log (size `currentSize`) that end the output, `bytes` at most. */
export function tailPlan(currentSize: number, rotatedSize: number, bytes: number): TailPlan {
	const fromCurrent = Math.min(bytes, currentSize);
	const fromRotated = Math.min(bytes - fromCurrent, rotatedSize);
	return {
		rotated: {offset: rotatedSize - fromRotated, length: fromRotated},
		current: {offset: currentSize - fromCurrent, length: fromCurrent},
	};
}

/** `--console-log-max` and `--dnsmasq-log-max` are MiB (fractions allowed): bytes, or a reason it is refused. */
export function logMaxBytes(flag: string, mebibytes: number): {readonly ok: true; readonly bytes: number} | {readonly ok: false; readonly reason: string} {
	const bytes = Math.floor(mebibytes * 1024 * 1024);
	if (!Number.isFinite(mebibytes) || bytes < MIN_LOG_MAX_BYTES) {
		return {ok: false, reason: `invalid ${flag} ${mebibytes}: a number of MiB ≥ ${MIN_LOG_MAX_BYTES / 1024 / 1024} (each half must hold a 128 KiB console read)`};
	}

	return {ok: true, bytes};
}
