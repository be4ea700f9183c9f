/**
 * A minimal QMP client: one short session per call over QEMU's unix socket (newline-delimited
 * JSON). A QMP socket serves one client at a time, so sessions are opened, used and closed at once.
 */
import {createConnection} from 'node:net';
import {setTimeout as sleep} from 'node:timers/promises';

/** How long one `qmpExecute` session may take unless told otherwise, in milliseconds. */
export const DEFAULT_QMP_TIMEOUT_MS = 5_000;

/** Pause between connection attempts in `waitForQmp`, in milliseconds. */
const POLL_INTERVAL_MS = 10;

/** Cap on one attempt in `waitForQmp`, so a stuck session cannot eat the whole deadline. */
const ATTEMPT_TIMEOUT_MS = 1_000;

/** A QMP session that failed: no socket, no greeting, a timeout, or an error reply from QEMU. */
export class QmpError extends Error {
	override name = 'QmpError';
	/** QMP's error class (`GenericError`, `CommandNotFound`, …) when QEMU answered with an error. */
	readonly errorClass: string | undefined;

	constructor(message: string, options?: {cause?: unknown; errorClass?: string}) {
		super(message, options?.cause === undefined ? undefined : {cause: options.cause});
		this.errorClass = options?.errorClass;
	}
}

/** Options of `qmpExecute`. */
export type QmpExecuteOptions = {
	/** The command's `arguments` object. */
	readonly arguments?: object;
	/** Deadline for the whole session (connect, greeting, capabilities, command). */
	readonly timeoutMs?: number;
	readonly signal?: AbortSignal;
};

/**
 * Connects to `socketPath`, negotiates capabilities, runs `command` and closes: resolves with the
 * command's `return` value. Asynchronous events are skipped. Rejects with `QmpError`.
 */
export async function qmpExecute(socketPath: string, command: string, options: QmpExecuteOptions = {}): Promise<unknown> {
	const timeoutMs = options.timeoutMs ?? DEFAULT_QMP_TIMEOUT_MS;
	const {signal} = options;
	if (signal?.aborted) {
		throw new QmpError(`QMP ${command} on ${socketPath} aborted`, {cause: signal.reason});
	}

	return new Promise<unknown>((resolve, reject) => {
		let phase: 'greeting' | 'capabilities' | 'command' = 'greeting';
		let pending = '';
		let isSettled = false;
		const socket = createConnection({path: socketPath});

		const waitingFor = (): string =>
			phase === 'greeting' ? 'the greeting' : phase === 'capabilities' ? 'the qmp_capabilities reply' : `the ${command} reply`;

		const finish = (error: QmpError | undefined, value?: unknown): void => {
			if (isSettled) {
				return;
			}

			isSettled = true;
			clearTimeout(timer);
			signal?.removeEventListener('abort', onAbort);
			socket.destroy();
			if (error) {
				reject(error);
			} else {
				resolve(value);
			}
		};

		const onAbort = (): void => {
			finish(new QmpError(`QMP ${command} on ${socketPath} aborted while waiting for ${waitingFor()}`, {cause: signal?.reason}));
		};

		const timer = setTimeout(() => {
			finish(new QmpError(`QMP ${command} on ${socketPath} timed out after ${timeoutMs} ms waiting for ${waitingFor()}`));
		}, timeoutMs);
		signal?.addEventListener('abort', onAbort, {once: true});

		const send = (message: object): void => {
			socket.write(`${JSON.stringify(message)}\n`);
		};

		const onMessage = (message: Record<string, unknown>): void => {
			if ('event' in message) {
				return;
			}

			if (phase === 'greeting') {
				if (!('QMP' in message)) {
					finish(new QmpError(`QMP socket ${socketPath} did not greet: got ${JSON.stringify(message).slice(0, 200)}`));
					return;
				}

				phase = 'capabilities';
				send({execute: 'qmp_capabilities'});
				return;
			}

			if ('error' in message) {
				const error = isRecord(message.error) ? message.error : {};
				const errorClass = typeof error.class === 'string' ? error.class : undefined;
				const description = typeof error.desc === 'string' ? error.desc : JSON.stringify(message.error);
				const failed = phase === 'capabilities' ? 'qmp_capabilities' : command;
				finish(new QmpError(`QMP ${failed} on ${socketPath} failed: ${errorClass ?? 'error'}: ${description}`, {errorClass}));
				return;
			}

			if (!('return' in message)) {
				return;
			}

			if (phase === 'capabilities') {
				phase = 'command';
				send(options.arguments === undefined ? {execute: command} : {execute: command, arguments: options.arguments});
				return;
			}

			finish(undefined, message.return);
		};

		socket.setEncoding('utf8');
		socket.on('data', (chunk: string) => {
			pending += chunk;
			let newline = pending.indexOf('\n');
			while (newline !== -1 && !isSettled) {
				const line = pending.slice(0, newline).trim();
				pending = pending.slice(newline + 1);
				if (line !== '') {
					let message: unknown;
					try {
						message = JSON.parse(line);
					} catch (error) {
						finish(new QmpError(`unparseable QMP line from ${socketPath}: ${line.slice(0, 200)}`, {cause: error}));
						return;
					}

					if (isRecord(message)) {
						onMessage(message);
					}
				}

				newline = pending.indexOf('\n');
			}
		});
		socket.on('error', error => {
			finish(new QmpError(`QMP ${command} on ${socketPath} failed: ${error.message}`, {cause: error}));
		});
		socket.on('close', () => {
			finish(new QmpError(`QMP socket ${socketPath} closed while waiting for ${waitingFor()}`));
		});
	});
}

/** Options of `waitForQmp`. */
export type WaitForQmpOptions = {
	readonly timeoutMs: number;
	/** Checked between attempts: once it returns false the wait fails at once. */
	readonly isAlive: () => boolean;
	readonly signal?: AbortSignal;
};

/**
 * Resolves once a QMP session on `socketPath` completes `query-status`, polling every ~10 ms.
 * Rejects with `QmpError` as soon as `isAlive()` turns false, at the deadline, or on abort.
 */
export async function waitForQmp(socketPath: string, options: WaitForQmpOptions): Promise<void> {
	const {timeoutMs, isAlive, signal} = options;
	const deadline = Date.now() + timeoutMs;
	let lastError: unknown;
	for (;;) {
		if (signal?.aborted) {
			throw new QmpError(`waiting for QMP on ${socketPath} aborted`, {cause: signal.reason});
		}

		if (!isAlive()) {
			throw new QmpError(`QEMU exited before QMP on ${socketPath} answered`, {cause: lastError});
		}

		const remaining = deadline - Date.now();
		if (remaining <= 0) {
			throw new QmpError(`QMP on ${socketPath} did not answer within ${timeoutMs} ms`, {cause: lastError});
		}

		try {
			await qmpExecute(socketPath, 'query-status', {timeoutMs: Math.min(remaining, ATTEMPT_TIMEOUT_MS), signal});
			return;
		} catch (error) {
			lastError = error;
		}

		try {
			await sleep(POLL_INTERVAL_MS, undefined, {signal});
		} catch {
			// Aborted: reported at the top of the loop with the signal's reason.
		}
	}
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}
