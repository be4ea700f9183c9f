/** The state root must be a real directory that only root (or the agent's user) may change: pure table, then real directories. */
import {chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {checkStateRoot, StateRootError, stateRootProblem} from '../agent/state-root.js';
import {StateStore} from '../agent/store.js';

const DIR = {isSymbolicLink: false, isDirectory: true, uid: 0, mode: 0o700};

describe('stateRootProblem', () => {
	const cases = [
		{what: 'root\'s 0700 directory', info: DIR, agentUid: 0, expected: undefined},
		{what: 'root\'s 0755 directory', info: {...DIR, mode: 0o755}, agentUid: 0, expected: undefined},
		{what: 'the agent user\'s own directory', info: {...DIR, uid: 1000}, agentUid: 1000, expected: undefined},
		{what: 'root\'s directory, agent not root', info: DIR, agentUid: 1000, expected: undefined},
		{what: 'a symbolic link', info: {...DIR, isSymbolicLink: true, isDirectory: false}, agentUid: 0, expected: /is a symbolic link/},
		{what: 'a file', info: {...DIR, isDirectory: false}, agentUid: 0, expected: /is not a directory/},
		{what: 'nobody\'s directory', info: {...DIR, uid: 65_534}, agentUid: 0, expected: /owned by uid 65534, not by root or the agent \(uid 0\)/},
		{what: 'a group-writable directory', info: {...DIR, mode: 0o770}, agentUid: 0, expected: /writable by others \(mode 770\)/},
		{what: 'a world-writable sticky directory', info: {...DIR, mode: 0o1777}, agentUid: 0, expected: /writable by others \(mode 777\)/},
	] as const;
	for (const {what, info, agentUid, expected} of cases) {
		it(what, () => {
			const problem = stateRootProblem('/var/lib/kloud/state', info, agentUid);
			if (expected === undefined) {
				expect(problem).toBeUndefined();
			} else {
				expect(problem).toMatch(expected);
			}
		});
	}
});

describe('checkStateRoot and StateStore.init on real directories', () => {
	let dir: string;
	beforeAll(async () => {
		dir = await mkdtemp(join(tmpdir(), 'kloud-root-'));
	});
	afterAll(async () => {
		await rm(dir, {recursive: true, force: true});
	});

	it('makes a missing root and accepts it', async () => {
		const root = join(dir, 'fresh', 'state');
		await new StateStore(root).init();
		await expect(checkStateRoot(root)).resolves.toBeUndefined();
	});

	it('refuses a symbolic link to a good directory', async () => {
		const real = join(dir, 'real');
		await mkdir(real, {mode: 0o700});
		const link = join(dir, 'link');
		await symlink(real, link);
		const error: unknown = await new StateStore(link).init().catch((error_: unknown) => error_);
		expect(error).toBeInstanceOf(StateRootError);
		expect((error as Error).message).toBe(`state dir ${link} is a symbolic link: give the real directory (--state-dir)`);
	});

	it('refuses a directory owned by another user (65534)', async () => {
		const root = join(dir, 'nobody');
		await mkdir(root, {mode: 0o700});
		await chown(root, 65_534, 65_534);
		await expect(new StateStore(root).init()).rejects.toThrow(/owned by uid 65534, not by root or the agent/);
	});

	it('refuses a world-writable directory and a file', async () => {
		const open = join(dir, 'open');
		await mkdir(open);
		await chmod(open, 0o777);
		await expect(new StateStore(open).init()).rejects.toThrow(/writable by others \(mode 777\)/);
		const file = join(dir, 'file');
		await writeFile(file, '');
		await expect(checkStateRoot(file)).rejects.toThrow(/is not a directory/);
	});
});
