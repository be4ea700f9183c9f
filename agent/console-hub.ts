/**
 * The agent's hold on every VM's serial port: one unix-socket connection per running VM (QEMU's
 * `console.sock` chardev), its output appended to `console.log` (held with O_APPEND, so the log
 * cap can truncate it) and fanned out to the VM's console sessions (`console-session.ts`), the
 * writer's input written back.
 * A VM started by this agent is watched from its spawn; one adopted from an earlier agent is
 * watched once found (its recent output then comes from the log's tail).
 */
import {randomBytes} from 'node:crypto';
import {open, type FileHandle} from 'node:fs/promises';
import {createConnection, type Socket} from 'node:net';
import {encode, type ConsoleFrame, type ErrorCode, type Request} from '../source/protocol/index.js';
import {CONSOLE_TAIL_BYTES, DEFAULT_ATTACH_TAIL_BYTES, DEFAULT_SESSION_IDLE_MS, VmConsole} from './console-session.js';
import {readLogTail} from './log-files.js';

/** Pause between tries to reach a console socket that is not there (yet). */
const CONNECT_RETRY_MS = 50;
/** Tries before a console socket counts as missing (≈ 10 s: QEMU makes it before it answers QMP). */
const CONNECT_TRIES = 200;
/** Output keeps coming (a flood): it goes out at most this often, gathered. */
const FLUSH_MS = 5;
/** Input held for a guest that does not read it before more is refused. */
const MAX_PENDING_INPUT_BYTES = 64 * 1024;

type Log = {info(object: object, message?: string): void; warn(object: object, message?: string): void; debug(object: object, message?: string): void};

export type ConsoleHubOptions = {
	/** Publishes a frame to a viewer's queue (default exchange); false when it cannot go now. */
	readonly publish: (queue: string, content: Uint8Array) => boolean;
	readonly log: Log;
	readonly idleMs?: number;
	readonly now?: () => number;
};

type LineState = 'connecting' | 'open' | 'closed' | 'missing';

type Line = {
	readonly vmId: string;
	readonly console: VmConsole;
	state: LineState;
	socket: Socket | undefined;
	timer: NodeJS.Timeout | undefined;
	/** Output read and not yet handed to the sessions. */
	pending: Buffer[];
	/** When output last went to the sessions (`performance.now()`). */
	flushedAt: number;
	/** The console log, held with O_APPEND (the agent caps it by truncating it under us). */
	log: Promise<FileHandle | undefined> | undefined;
	/** Appends to the log, in order. */
	logWrites: Promise<void>;
};

export type AttachOutcome = {readonly ok: true; readonly session: string; readonly isWriter: boolean; readonly tailFrames: number} | {readonly ok: false; readonly code: 'invalid_state'; readonly reason: string};

/** The console session requests (`vm.console.attach`, `.input`, `.detach`). */
export type ConsoleRequest = Extract<Request, {type: 'vm.console.attach' | 'vm.console.input' | 'vm.console.detach'}>;

export type ConsoleAnswer = {readonly ok: true; readonly value: unknown} | {readonly ok: false; readonly code: ErrorCode; readonly reason: string};

export class ConsoleHub {
	readonly #options: ConsoleHubOptions;
	readonly #lines = new Map<string, Line>();
	readonly #sweeper: NodeJS.Timeout;

	constructor(options: ConsoleHubOptions) {
		this.#options = options;
		this.#sweeper = setInterval(() => this.sweep(), 1000);
		this.#sweeper.unref();
	}

	get idleMs(): number {
		return this.#options.idleMs ?? DEFAULT_SESSION_IDLE_MS;
	}

	/**
	 * Holds VM `vmId`'s console socket. `isNewProcess` (a QEMU just spawned): start over even if a line
	 * is known; otherwise (the reconcile's rounds) only a VM without a line is taken up.
	 */
	watch(vmId: string, paths: {readonly consoleSocket: string; readonly console: string}, options: {readonly isNewProcess: boolean}): void {
		const known = this.#lines.get(vmId);
		if (known && !options.isNewProcess) {
			return;
		}

		if (known) {
			this.drop(known, `VM ${vmId} started again: its console restarts`);
		}

		const line: Line = {vmId, console: new VmConsole(vmId, (queue, frame) => this.send(queue, frame)), state: 'connecting', socket: undefined, timer: undefined, pending: [], flushedAt: 0, log: undefined, logWrites: Promise.resolve()};
		this.#lines.set(vmId, line);
		if (!options.isNewProcess) {
			// Taken over from an earlier agent: what the guest said before comes from its log.
			void readLogTail(paths.console, CONSOLE_TAIL_BYTES).then(
				tail => line.console.seedTail(tail.data),
				() => {},
			);
		}

		this.connect(line, paths.consoleSocket, paths.console, 1);
	}

	/**
	 * Answers a console request from `user` (validated by the broker). For an attach the caller has
	 * checked that the VM is here and that the user may act on it; input and detach are only taken
	 * from the user who attached.
	 */
	serve(request: ConsoleRequest, user: string | null, hostId: string): ConsoleAnswer {
		switch (request.type) {
			case 'vm.console.attach': {
				const {vmId, output, write, tailBytes} = request.body;
				const attached = this.attach(vmId, {user, output, write: write ?? false, ...(tailBytes === undefined ? {} : {tailBytes})});
				return attached.ok ? {ok: true, value: {vmId, host: hostId, session: attached.session, isWriter: attached.isWriter, expiresAfterMs: this.idleMs, tailFrames: attached.tailFrames}} : attached;
			}

			case 'vm.console.input': {
				const {session, data} = request.body;
				const verdict = this.input(session, user, data === undefined ? undefined : Buffer.from(data, 'base64'));
				return verdict.ok ? {ok: true, value: {session, isWriter: verdict.isWriter}} : {ok: false, code: 'invalid_state', reason: `host ${hostId}: ${verdict.reason}`};
			}

			case 'vm.console.detach': {
				const {session} = request.body;
				return this.detach(session, user) ? {ok: true, value: {session}} : {ok: false, code: 'invalid_state', reason: `host ${hostId}: no console session ${session.slice(0, 8)}… here (it ended or expired)`};
			}
		}
	}

	/** Opens a session on VM `vmId` (the caller has checked the user may act on it). */
	attach(vmId: string, request: {readonly user: string | null; readonly output: string; readonly write: boolean; readonly tailBytes?: number}): AttachOutcome {
		const line = this.#lines.get(vmId);
		if (!line || line.state === 'closed') {
			return {ok: false, code: 'invalid_state', reason: `VM ${vmId} is not running: its console opens when it runs`};
		}

		if (line.state === 'missing') {
			return {ok: false, code: 'invalid_state', reason: `VM ${vmId} has no console socket (started by an older kloud agent with a file console): boot it again to get one`};
		}

		const session = randomBytes(16).toString('hex');
		const {isWriter, tailFrames} = line.console.attach({id: session, user: request.user, output: request.output, write: request.write, tailBytes: request.tailBytes ?? DEFAULT_ATTACH_TAIL_BYTES, now: this.now()});
		this.#options.log.info({vm: vmId, session: session.slice(0, 8), user: request.user, write: request.write, isWriter, viewers: line.console.size}, 'console attached');
		return {ok: true, session, isWriter, tailFrames};
	}

	/** Input (or, with no data, a keepalive) for session `session` of `user`. */
	input(session: string, user: string | null, data: Buffer | undefined): {readonly ok: true; readonly isWriter: boolean} | {readonly ok: false; readonly reason: string} {
		const line = this.lineOf(session, user);
		if (!line) {
			return {ok: false, reason: `no console session ${session.slice(0, 8)}… here (it ended or expired)`};
		}

		const verdict = line.console.touch(session, user, this.now(), {isInput: data !== undefined && data.length > 0});
		if (verdict.ok && verdict.isWriter && data && data.length > 0 && line.socket && line.state === 'open') {
			if (line.socket.writableLength > MAX_PENDING_INPUT_BYTES) {
				this.#options.log.debug({vm: line.vmId, bytes: data.length}, 'console input dropped: the guest does not read');
			} else {
				line.socket.write(data);
			}
		}

		return verdict;
	}

	/** Ends session `session` of `user` at its viewer's request. */
	detach(session: string, user: string | null): boolean {
		const line = this.lineOf(session, user);
		if (!line) {
			return false;
		}

		line.console.end(session, 'detached');
		this.#options.log.info({vm: line.vmId, session: session.slice(0, 8), user}, 'console detached');
		return true;
	}

	/**
	 * VM `vmId` was live-migrated to host `to` (its copy here is about to go): its sessions end
	 * saying where it runs now, so their viewers attach there again.
	 */
	moved(vmId: string, to: string): void {
		const line = this.#lines.get(vmId);
		if (!line) {
			return;
		}

		this.#lines.delete(vmId);
		this.drop(line, `VM ${vmId} moved to host ${to}`, to);
		this.#options.log.info({vm: vmId, to}, 'console sessions sent on to the VM\'s new host');
	}

	/** Lets go of every console: viewers hear why (the agent stops; VMs run on). */
	close(reason: string): void {
		clearInterval(this.#sweeper);
		for (const line of this.#lines.values()) {
			this.drop(line, reason);
		}

		this.#lines.clear();
	}

	private lineOf(session: string, user: string | null): Line | undefined {
		for (const line of this.#lines.values()) {
			if (line.console.has(session, user)) {
				return line;
			}
		}

		return undefined;
	}

	private connect(line: Line, path: string, logPath: string, attempt: number): void {
		if (this.#lines.get(line.vmId) !== line) {
			return;
		}

		const socket = createConnection({path});
		socket.on('connect', () => {
			line.state = 'open';
			line.socket = socket;
			line.log = open(logPath, 'a', 0o600).catch((error: unknown) => {
				this.#options.log.warn({vm: line.vmId, err: error}, 'console log not opened: output is streamed only');
				return undefined;
			});
			this.#options.log.debug({vm: line.vmId}, 'console socket held');
		});
		socket.on('data', chunk => {
			line.pending.push(chunk);
			if (line.pending.length > 1) {
				return;
			}

			// A keystroke's echo goes out at once; a flood (the UART gives a few bytes per read) is
			// gathered into at most one frame per FLUSH_MS, not a message per read.
			const flush = () => {
				const data = line.pending.length === 1 ? line.pending[0]! : Buffer.concat(line.pending);
				line.pending = [];
				line.flushedAt = performance.now();
				line.console.output(data);
				const {log} = line;
				line.logWrites = line.logWrites.then(async () => {
					await (await log)?.write(data).catch(() => {});
				});
			};

			// The first bytes after a quiet spell (a keystroke's echo) go in this turn of the event loop.
			const since = performance.now() - line.flushedAt;
			if (since >= FLUSH_MS) {
				flush();
			} else {
				setTimeout(flush, FLUSH_MS - since);
			}
		});
		socket.on('error', (error: NodeJS.ErrnoException) => {
			if (line.state !== 'connecting' || this.#lines.get(line.vmId) !== line) {
				return;
			}

			if (attempt >= CONNECT_TRIES || (error.code !== 'ENOENT' && error.code !== 'ECONNREFUSED')) {
				line.state = 'missing';
				this.#options.log.warn({vm: line.vmId, err: error}, 'no console socket: interactive console unavailable');
				return;
			}

			line.timer = setTimeout(() => this.connect(line, path, logPath, attempt + 1), CONNECT_RETRY_MS);
			line.timer.unref();
		});
		socket.on('close', () => {
			if (line.socket !== socket) {
				return;
			}

			line.socket = undefined;
			line.state = 'closed';
			this.closeLog(line);
			line.console.endAll(`VM ${line.vmId} stopped: its console closed`);
			// Its QEMU is gone: a new one is watched afresh from its spawn.
			if (this.#lines.get(line.vmId) === line) {
				this.#lines.delete(line.vmId);
			}
		});
	}

	private closeLog(line: Line): void {
		const {log} = line;
		line.log = undefined;
		line.logWrites = line.logWrites.then(async () => {
			await (await log)?.close().catch(() => {});
		});
	}

	private drop(line: Line, reason: string, movedTo?: string): void {
		clearTimeout(line.timer);
		this.closeLog(line);
		line.state = 'closed';
		const {socket} = line;
		line.socket = undefined;
		socket?.destroy();
		line.console.endAll(reason, movedTo);
	}

	private sweep(): void {
		const now = this.now();
		for (const line of this.#lines.values()) {
			for (const session of line.console.expire(now, this.idleMs)) {
				this.#options.log.info({vm: line.vmId, session: session.slice(0, 8)}, 'console session expired');
			}
		}
	}

	private send(queue: string, frame: ConsoleFrame): boolean {
		try {
			return this.#options.publish(queue, encode(frame));
		} catch {
			return false;
		}
	}

	private now(): number {
		return this.#options.now?.() ?? Date.now();
	}
}
