/**
 * One VM's interactive console sessions, without I/O: the viewers attached, the writer's seat, and
 * the guest's recent output (the tail a new viewer sees first). Frames leave through `send`, which
 * may refuse one (the broker link is congested): the session then counts what it missed and its next
 * output frame says so, so a slow or vanished viewer never holds anything up.
 *
 * The writer rule: the last viewer to attach with `write` takes the writer's seat (the one it took
 * it from is told, and watches on); input from any other session is refused with a notice. When the
 * writer detaches the seat stays empty until someone attaches with `write` again.
 */
import {Buffer} from 'node:buffer';
import {PROTOCOL_VERSION, type ConsoleFrame} from '../source/protocol/index.js';

/** Recent output kept per VM for viewers that attach (the most a viewer may ask for). */
export const CONSOLE_TAIL_BYTES = 64 * 1024;

/** Tail sent to a viewer that does not say how much it wants. */
export const DEFAULT_ATTACH_TAIL_BYTES = 4 * 1024;

/** Largest output frame, in guest bytes (base64 makes it a third larger). */
export const MAX_FRAME_BYTES = 16 * 1024;

/** How long a session lives without a keepalive or input from its viewer. */
export const DEFAULT_SESSION_IDLE_MS = 15_000;

/** Sends one frame to a viewer's output queue: false when it could not go (it is then dropped). */
export type SendFrame = (output: string, frame: ConsoleFrame) => boolean;

type FrameDraft =
	| {readonly type: 'console.output'; readonly data: string; readonly dropped?: number}
	| {readonly type: 'console.notice'; readonly text: string; readonly isWriter: boolean}
	| {readonly type: 'console.end'; readonly reason: string};

type Session = {
	readonly id: string;
	readonly user: string | null;
	readonly output: string;
	seq: number;
	lastSeen: number;
	/** Guest bytes this session missed since its last frame that went out. */
	dropped: number;
	/** When this session was last told it is not the writer (so a typist is told once a second, not per key). */
	refusedAt: number;
};

export type AttachRequest = {
	readonly id: string;
	readonly user: string | null;
	readonly output: string;
	readonly write: boolean;
	readonly tailBytes: number;
	readonly now: number;
};

export type InputVerdict =
	| {readonly ok: true; readonly isWriter: true}
	| {readonly ok: true; readonly isWriter: false}
	| {readonly ok: false; readonly reason: string};

export class VmConsole {
	readonly vmId: string;
	readonly #send: SendFrame;
	readonly #sessions = new Map<string, Session>();
	#tail: Buffer = Buffer.alloc(0);
	#writer: string | undefined;

	constructor(vmId: string, send: SendFrame) {
		this.vmId = vmId;
		this.#send = send;
	}

	get size(): number {
		return this.#sessions.size;
	}

	get writer(): string | undefined {
		return this.#writer;
	}

	/** Recent output known before any viewer (e.g. the log's tail when the agent takes over a running VM). */
	seedTail(data: Buffer): void {
		this.#tail = Buffer.concat([data, this.#tail]).subarray(-CONSOLE_TAIL_BYTES);
	}

	/** Guest output: kept in the tail and sent to every session. */
	output(chunk: Buffer): void {
		this.#tail = this.#tail.length + chunk.length <= CONSOLE_TAIL_BYTES ? Buffer.concat([this.#tail, chunk]) : Buffer.concat([this.#tail, chunk]).subarray(-CONSOLE_TAIL_BYTES);
		for (const session of this.#sessions.values()) {
			this.sendOutput(session, chunk);
		}
	}

	/** Adds a session: its viewer gets the tail first. Returns whether it holds the writer's seat, and how many frames the tail took. */
	attach(request: AttachRequest): {readonly isWriter: boolean; readonly tailFrames: number} {
		const session: Session = {id: request.id, user: request.user, output: request.output, seq: 0, lastSeen: request.now, dropped: 0, refusedAt: 0};
		this.#sessions.set(session.id, session);
		if (request.write) {
			const previous = this.#writer === undefined ? undefined : this.#sessions.get(this.#writer);
			this.#writer = session.id;
			if (previous) {
				this.frame(previous, {type: 'console.notice', text: `${request.user ?? 'another viewer'} attached with write and took the writer's seat: you are watching only now`, isWriter: false});
			}
		}

		if (request.tailBytes > 0 && this.#tail.length > 0) {
			this.sendOutput(session, this.#tail.subarray(-request.tailBytes));
		}

		return {isWriter: this.#writer === session.id, tailFrames: session.seq};
	}

	/** Input or a keepalive from session `id` of `user`: whether it may write, or why it is refused. */
	touch(id: string, user: string | null, now: number, options: {readonly isInput: boolean}): InputVerdict {
		const session = this.#sessions.get(id);
		if (!session || session.user !== user) {
			return {ok: false, reason: `no console session ${id.slice(0, 8)}… on VM ${this.vmId} (it ended or expired)`};
		}

		session.lastSeen = now;
		if (this.#writer === id) {
			return {ok: true, isWriter: true};
		}

		if (options.isInput && now - session.refusedAt >= 1000) {
			session.refusedAt = now;
			this.frame(session, {type: 'console.notice', text: 'input refused: another viewer holds the writer\'s seat (attach with write to take it)', isWriter: false});
		}

		return {ok: true, isWriter: false};
	}

	/** Whether session `id` belongs to `user` (input and detach from anyone else are refused). */
	has(id: string, user: string | null): boolean {
		return this.#sessions.get(id)?.user === user;
	}

	/** Ends one session; its viewer hears `reason` (when there is one to tell), and where the VM went if it moved. */
	end(id: string, reason: string, movedTo?: string): void {
		const session = this.#sessions.get(id);
		if (!session) {
			return;
		}

		this.#sessions.delete(id);
		if (this.#writer === id) {
			this.#writer = undefined;
		}

		this.frame(session, {type: 'console.end', reason, ...(movedTo === undefined ? {} : {movedTo})});
	}

	/** Ends the sessions silent for longer than `idleMs`; returns their ids. */
	expire(now: number, idleMs: number): string[] {
		const expired = [...this.#sessions.values()].filter(session => now - session.lastSeen > idleMs).map(session => session.id);
		for (const id of expired) {
			this.end(id, `session expired: nothing from the viewer for ${Math.round(idleMs / 1000)} s`);
		}

		return expired;
	}

	/** Ends every session (the VM stopped or moved to host `movedTo`, the agent shuts down). */
	endAll(reason: string, movedTo?: string): void {
		for (const id of [...this.#sessions.keys()]) {
			this.end(id, reason, movedTo);
		}
	}

	private sendOutput(session: Session, chunk: Buffer): void {
		for (let offset = 0; offset < chunk.length; offset += MAX_FRAME_BYTES) {
			const piece = chunk.subarray(offset, offset + MAX_FRAME_BYTES);
			const isSent = this.frame(session, {type: 'console.output', data: piece.toString('base64'), ...(session.dropped > 0 ? {dropped: session.dropped} : {})});
			if (isSent) {
				session.dropped = 0;
			} else {
				session.dropped += piece.length;
			}
		}
	}

	private frame(session: Session, draft: FrameDraft): boolean {
		const frame = {v: PROTOCOL_VERSION, session: session.id, seq: session.seq, ...draft} as ConsoleFrame;
		const isSent = this.#send(session.output, frame);
		if (isSent) {
			session.seq++;
		}

		return isSent;
	}
}
