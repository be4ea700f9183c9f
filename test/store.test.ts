/** The agent's memory of stopped VMs on disk: appended, read back after a restart, torn lines skipped, bounded. */
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import type {GoneRecord} from '../agent/record.js';
import {StateStore} from '../agent/store.js';

let root: string;
let store: StateStore;

const gone = (id: string, clientToken: string | null = null): GoneRecord => ({
	vm: {id, host: 'host-a', image: 'demo', state: 'stopped', memoryMb: 128, cpus: 1, pid: null, createdAt: 1, uptimeSeconds: 0, ip: null, mac: null, exit: 'powered off', clientToken, owner: null},
	owner: null,
	clientToken,
});

beforeEach(async () => {
	root = await mkdtemp(join(tmpdir(), 'kloud-store-'));
	store = new StateStore(root);
	await store.init();
});

afterEach(async () => {
	await rm(root, {recursive: true, force: true});
});

describe('stopped VMs remembered in the state root', () => {
	it('a new store on the same root (an agent restart) reads back what was appended, oldest first, private to root', async () => {
		await store.appendGone(gone('vm-aaaaaaaa', 'token-1'));
		await store.appendGone(gone('vm-bbbbbbbb', 'token-2'));
		const again = new StateStore(root);
		expect((await again.readGone(1024)).map(entry => [entry.vm.id, entry.clientToken])).toEqual([
			['vm-aaaaaaaa', 'token-1'],
			['vm-bbbbbbbb', 'token-2'],
		]);
		expect((await stat(store.gonePath)).mode & 0o777).toBe(0o600);
		// Not a VM directory: the records are untouched by it.
		expect(await store.readAll()).toEqual({records: [], unreadable: []});
	});

	it('skips a line torn by a crash and lines that are not records, and keeps only the newest `limit`, rewriting the file', async () => {
		await store.appendGone(gone('vm-aaaaaaaa'));
		await store.appendGone(gone('vm-bbbbbbbb'));
		await writeFile(store.gonePath, `${await readFile(store.gonePath, 'utf8')}{"vm":{"id":"vm-cccc\n["not","a record"]\n`);
		await store.appendGone(gone('vm-dddddddd'));
		expect((await store.readGone(1024)).map(entry => entry.vm.id)).toEqual(['vm-aaaaaaaa', 'vm-bbbbbbbb', 'vm-dddddddd']);
		expect((await store.readGone(2)).map(entry => entry.vm.id)).toEqual(['vm-bbbbbbbb', 'vm-dddddddd']);
		expect((await readFile(store.gonePath, 'utf8')).trim().split('\n')).toHaveLength(2);
	});

	it('is rewritten with just what is given (a long-running agent keeping it bounded), and appends go on after it', async () => {
		for (const id of ['vm-aaaaaaaa', 'vm-bbbbbbbb', 'vm-cccccccc']) {
			await store.appendGone(gone(id));
		}

		await store.rewriteGone([gone('vm-cccccccc')]);
		await store.appendGone(gone('vm-dddddddd'));
		expect((await store.readGone(1024)).map(entry => entry.vm.id)).toEqual(['vm-cccccccc', 'vm-dddddddd']);
		expect((await stat(store.gonePath)).mode & 0o777).toBe(0o600);
	});

	it('is empty when nothing was ever stopped', async () => {
		expect(await store.readGone(10)).toEqual([]);
	});
});
