/**
 * `kloud-tui console VM_ID --attach`: a live terminal on a VM's serial console, through the broker.
 *
 * On a terminal: raw mode (every key goes to the guest, ctrl-C included); `ctrl-]` detaches (as in
 * virsh and telnet); the terminal is put back on every way out: detach, the VM stopping, the broker
 * lost, SIGTERM/SIGINT/SIGHUP, a crash (the process's `exit`). Without a terminal (a pipe): stdin
 * goes to the guest, new output to stdout; `--until PATTERN` ends (status 0) once the output since
 * attaching matches, else the session ends when stdin has ended and the output has gone quiet.
 * kloud's own lines (`[kloud: …]`) go to stderr. Exit status: 0 detached or matched, 1 otherwise.
 */
import {Buffer} from 'node:buffer';
import type {KloudClient} from '../broker/client.js';
import {ConsoleStream, type ConsoleEvent} from '../broker/console-stream.js';

/** The byte `ctrl-]` sends. */
export const DETACH_KEY = 0x1d;

/** A terminal's cursor position report (`ESC [ row ; col R`), its answer to `ESC [6n`. */
// eslint-disable-next-line no-control-regex
const CURSOR_REPORT = /\u001B\[\d+;\d+R/g;

/** Without `--until`, how long the output must stay quiet after stdin ended before the session ends. */
const QUIET_MS = 1000;

/** How much output `--until` looks back over. */
const UNTIL_WINDOW = 64 * 1024;

export type AttachConsoleOptions = {
	readonly write: boolean;
	readonly until?: RegExp;
	readonly host?: string;
	/** For the attach request. */
	readonly timeoutMs: number;
	/** For `--until` to match (pipe mode); default none. */
	readonly untilTimeoutMs?: number;
};

export type ConsoleIo = {
	readonly stdin: NodeJS.ReadStream;
	readonly stdout: NodeJS.WriteStream;
	readonly stderr: NodeJS.WriteStream;
};

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = {SIGHUP: 1, SIGINT: 2, SIGTERM: 15};

/** Runs one attached session to its end; resolves with the exit status. */
export async function attachConsole(client: KloudClient, vmId: string, options: AttachConsoleOptions, io: ConsoleIo = process): Promise<number> {
	const {stdin, stdout, stderr} = io;
	const isTerminal = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
	const newline = isTerminal ? '\r\n' : '\n';
	const say = (text: string) => stderr.write(`${newline}[kloud: ${text}]${newline}`);
	let status: number | undefined;
	let finish: (code: number) => void = () => {};
	const finished = new Promise<number>(resolve => {
		finish = code => {
			status ??= code;
			resolve(status);
		};
	});

	let isRaw = false;
	const restore = () => {
		if (isRaw) {
			isRaw = false;
			try {
				stdin.setRawMode(false);
			} catch {}
		}
	};

	let seen = '';
	let quietTimer: NodeJS.Timeout | undefined;
	let isInputOver = false;
	const armQuiet = () => {
		if (isInputOver && !options.until) {
			clearTimeout(quietTimer);
			quietTimer = setTimeout(() => finish(0), QUIET_MS);
		}
	};

	// Output that comes before the "Connected" line is held until it is printed.
	let held: Buffer[] | undefined = [];
	const onEvent = (event: ConsoleEvent) => {
		switch (event.type) {
			case 'output': {
				if (isTerminal || !event.isTail) {
					if (held) {
						held.push(event.data);
					} else {
						stdout.write(event.data);
					}
				}

				if (!event.isTail && options.until) {
					seen = (seen + event.data.toString('utf8')).slice(-UNTIL_WINDOW);
					if (options.until.test(seen)) {
						finish(0);
					}
				}

				armQuiet();
				break;
			}

			case 'dropped': {
				say(event.frames === undefined ? `${event.bytes ?? 0} bytes of output dropped (the agent could not send them)` : `${event.frames} output frames dropped (this viewer read too slowly)`);
				break;
			}

			case 'notice': {
				say(event.text);
				break;
			}

			case 'end': {
				if (!event.isDetached) {
					say(`console closed: ${event.reason}`);
				}

				finish(event.isDetached ? 0 : 1);
				break;
			}
		}
	};

	const onSignal = (signal: (typeof SIGNALS)[number]) => {
		restore();
		say(`${signal}: detaching`);
		finish(128 + SIGNAL_NUMBERS[signal]);
	};

	const signalHandlers = SIGNALS.map(signal => [signal, () => onSignal(signal)] as const);
	for (const [signal, handler] of signalHandlers) {
		process.on(signal, handler);
	}

	// A crash or an exit from anywhere still gives the terminal back.
	process.on('exit', restore);
	let stream: ConsoleStream | undefined;
	let untilTimer: NodeJS.Timeout | undefined;
	const onData = (raw: Buffer | string) => {
		if (!stream) {
			return;
		}

		// A stdin someone set an encoding on (Ink does) hands over strings.
		const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;

		const detachAt = isTerminal ? chunk.indexOf(DETACH_KEY) : -1;
		let data = detachAt === -1 ? chunk : chunk.subarray(0, detachAt);
		if (isTerminal && !stream.isWriter) {
			// The terminal's answers to the guest's cursor queries (busybox asks at every prompt) are
			// not typing: a viewer that only watches does not send them (they would only be refused).
			data = Buffer.from(data.toString('latin1').replaceAll(CURSOR_REPORT, ''), 'latin1');
		}

		if (data.length > 0) {
			stream.input(data);
		}

		if (detachAt !== -1) {
			finish(0);
		}
	};

	const onEnd = () => {
		isInputOver = true;
		armQuiet();
	};

	try {
		if (isTerminal) {
			// Raw before the first output: the terminal answers the guest's queries in it (a cooked
			// terminal would echo the answers onto the screen).
			stdin.setRawMode(true);
			isRaw = true;
		}

		stream = await ConsoleStream.open(client, vmId, {
			write: options.write,
			// A script wants what its input causes, not what was on the screen before.
			...(isTerminal ? {} : {tailBytes: 0}),
			...(options.host === undefined ? {} : {host: options.host}),
			timeoutMs: options.timeoutMs,
			onEvent,
		});
		if (status === undefined) {
			if (isTerminal) {
				stderr.write(`Connected to ${vmId} on host ${stream.host} (${stream.isWriter ? 'you type into it' : 'watching only'}; ctrl-] detaches)\r\n`);
			}

			if (options.until && options.untilTimeoutMs !== undefined) {
				const ms = options.untilTimeoutMs;
				untilTimer = setTimeout(() => {
					say(`no output matched ${String(options.until)} within ${(ms / 1000).toFixed(1)} s`);
					finish(1);
				}, ms);
			}

			for (const data of held ?? []) {
				stdout.write(data);
			}

			held = undefined;
			stdin.on('data', onData);
			stdin.on('end', onEnd);
			stdin.resume();
		}

		const code = await finished;
		await stream.detach();
		return code;
	} finally {
		clearTimeout(quietTimer);
		clearTimeout(untilTimer);
		restore();
		stdin.off('data', onData);
		stdin.off('end', onEnd);
		stdin.pause();
		if (!isTerminal) {
			// A pipe that stays open (e.g. `sleep 100 | …`) must not keep the process alive.
			stdin.destroy();
		}

		for (const [signal, handler] of signalHandlers) {
			process.off(signal, handler);
		}

		process.off('exit', restore);
	}
}
