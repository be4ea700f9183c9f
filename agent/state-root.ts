/**
 * The agent's state root holds disks, consoles, QMP sockets and records that root acts on: a root
 * that is a symlink, or that another user owns or may write to, would let that user point the agent
 * at files of their choosing. The decision is pure (`stateRootProblem`); `checkStateRoot` reads it.
 */
import {lstat} from 'node:fs/promises';

/** Thrown when the state root is unsafe to use; the message says what to fix. */
export class StateRootError extends Error {
	override name = 'StateRootError';
}

/** What `lstat` says of the state root. */
export type StateRootInfo = {
	readonly isSymbolicLink: boolean;
	readonly isDirectory: boolean;
	readonly uid: number;
	/** Permission bits (`mode & 0o7777`). */
	readonly mode: number;
};

/** Why `path` may not be the state root of an agent running as `agentUid`, or undefined when it may. */
export function stateRootProblem(path: string, info: StateRootInfo, agentUid: number): string | undefined {
	if (info.isSymbolicLink) {
		return `state dir ${path} is a symbolic link: give the real directory (--state-dir)`;
	}

	if (!info.isDirectory) {
		return `state dir ${path} is not a directory`;
	}

	if (info.uid !== 0 && info.uid !== agentUid) {
		return `state dir ${path} is owned by uid ${info.uid}, not by root or the agent (uid ${agentUid}): chown it, or give another --state-dir`;
	}

	if ((info.mode & 0o022) !== 0) {
		return `state dir ${path} is writable by others (mode ${(info.mode & 0o777).toString(8).padStart(3, '0')}): chmod go-w it, or give another --state-dir`;
	}

	return undefined;
}

/** Throws `StateRootError` when `path` is unsafe as the state root (see `stateRootProblem`). */
export async function checkStateRoot(path: string, agentUid = process.getuid?.() ?? 0): Promise<void> {
	const stats = await lstat(path);
	const problem = stateRootProblem(path, {isSymbolicLink: stats.isSymbolicLink(), isDirectory: stats.isDirectory(), uid: stats.uid, mode: stats.mode & 0o7777}, agentUid);
	if (problem) {
		throw new StateRootError(problem);
	}
}
