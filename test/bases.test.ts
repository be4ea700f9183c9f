/**
 * Content-addressed bases: the pure decisions (`bases.ts`) as tables, and the store
 * (`base-store.ts`) on a real temporary directory: an image hashed once per file identity (also
 * across an agent restart), copies read-only and never changed by a later write to the image,
 * concurrent starts of a new image making one copy, a migration's base checked, and the clean-up
 * removing exactly the bases nothing uses.
 */
import {createHash} from 'node:crypto';
import {mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pino} from 'pino';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {BaseMismatchError, BaseStore} from '../agent/base-store.js';
import {arrivalBaseProblem, backingSha, baseFileSha, HashCache, identityKey, isStaleTemporary, markerName, markerVm, removableBases, STALE_TEMPORARY_MS} from '../agent/bases.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('bases: pure decisions', () => {
	it.each([
		[`/var/lib/kloud/images/.bases/${A}.qcow2`, A],
		[`.bases/${B}.qcow2`, B],
		['/var/lib/kloud/images/demo.qcow2', undefined],
		[`/var/lib/kloud/images/.bases/.tmp-${A}-1234.qcow2`, undefined],
		[`/elsewhere/${A}.qcow2`, undefined],
		[`/x/.bases/${A.toUpperCase()}.qcow2`, undefined],
		[undefined, undefined],
	])('backingSha(%s) = %s', (backing, sha) => {
		expect(backingSha(backing)).toBe(sha);
	});

	it('baseFileSha names only `<sha>.qcow2`', () => {
		expect(baseFileSha(`${A}.qcow2`)).toBe(A);
		expect(['hashes.json', 'users', `.tmp-${A}-x`, `.trash-${A}-x`, 'demo.qcow2'].map(baseFileSha)).toEqual([undefined, undefined, undefined, undefined, undefined]);
	});

	it('identityKey changes with the device, the inode, the size and the mtime', () => {
		const identity = {dev: 1n, ino: 2n, size: 3n, mtimeNs: 4n};
		const keys = new Set([identity, {...identity, dev: 9n}, {...identity, ino: 9n}, {...identity, size: 9n}, {...identity, mtimeNs: 9n}].map(identityKey));
		expect(keys.size).toBe(5);
	});

	it('HashCache keeps the newest entries, refreshes a key set again, and loads only well-formed ones', () => {
		const cache = new HashCache(2);
		cache.set('k1', A);
		cache.set('k2', B);
		cache.set('k1', A);
		cache.set('k3', B);
		expect(cache.toJSON()).toEqual([['k1', A], ['k3', B]]);
		const loaded = new HashCache();
		loaded.load([['k1', A], ['k2', 'not-a-sha'], 'junk', [3, B]]);
		loaded.load({});
		expect(loaded.toJSON()).toEqual([['k1', A]]);
	});

	it.each([
		{use: {markers: 0, isPinned: false, isCurrentImage: false}, isRemoved: true},
		{use: {markers: 1, isPinned: false, isCurrentImage: false}, isRemoved: false},
		{use: {markers: 0, isPinned: true, isCurrentImage: false}, isRemoved: false},
		{use: {markers: 0, isPinned: false, isCurrentImage: true}, isRemoved: false},
	])('removableBases: $use → removed $isRemoved', ({use, isRemoved}) => {
		expect(removableBases([{sha256: A, ...use}])).toEqual(isRemoved ? [A] : []);
	});

	it.each([
		[`.tmp-${A}-1a2b3c4d`, STALE_TEMPORARY_MS + 1, true],
		[`.trash-${A}-1a2b3c4d`, STALE_TEMPORARY_MS + 1, true],
		[`.tmp-${A}-1a2b3c4d`, STALE_TEMPORARY_MS - 1000, false],
		[`${A}.qcow2`, STALE_TEMPORARY_MS * 100, false],
		['hashes.json', STALE_TEMPORARY_MS * 100, false],
	])('isStaleTemporary(%s, %d ms old) = %s', (name, age, isStale) => {
		expect(isStaleTemporary(name, 1_000_000_000 - age, 1_000_000_000)).toBe(isStale);
	});

	it('markers: an agent finds its own VMs only', () => {
		expect(markerVm('k1', markerName('k1', 'vm-abcdefgh'))).toBe('vm-abcdefgh');
		expect(markerVm('k1', markerName('k2', 'vm-abcdefgh'))).toBeUndefined();
	});

	it('arrivalBaseProblem: the base held, or the image with its content, takes the VM in; else a clear refusal', () => {
		expect(arrivalBaseProblem({hostId: 'h', image: 'demo', wanted: A, hasBase: true, imageSha: B})).toBeUndefined();
		expect(arrivalBaseProblem({hostId: 'h', image: 'demo', wanted: A, hasBase: false, imageSha: A})).toBeUndefined();
		expect(arrivalBaseProblem({hostId: 'h', image: 'demo', wanted: A, hasBase: false, imageSha: B})).toBe(`host h's image demo differs from the VM's base (sha256 ${A}, the image's is ${B})`);
	});
});

describe('BaseStore on a real directory', () => {
	let dir: string;
	let images: string;
	let state: string;
	let messages: string[];

	const sha = (content: string) => createHash('sha256').update(content).digest('hex');
	const newStore = (agentKey = 'agent1') => {
		const log = pino({level: 'info'}, {write: (line: string) => void messages.push((JSON.parse(line) as {msg: string}).msg)});
		return new BaseStore({imagesDir: images, stateRoot: state, agentKey, hostId: 'host-t', log});
	};

	const count = (message: string) => messages.filter(entry => entry === message).length;
	const bases = async () => (await readdir(join(images, '.bases'))).filter(name => name.endsWith('.qcow2')).sort();

	beforeEach(async () => {
		dir = await mkdtemp(join(tmpdir(), 'kloud-bases-'));
		images = join(dir, 'img');
		state = join(dir, 'state');
		await mkdir(images);
		await mkdir(state);
		messages = [];
	});

	afterEach(async () => {
		await rm(dir, {recursive: true, force: true});
	});

	it('hashes an image once per content (also after a restart, from the sidecar), through a symlink, into a read-only copy', async () => {
		await writeFile(join(dir, 'build-1.qcow2'), 'content one');
		await symlink(join(dir, 'build-1.qcow2'), join(images, 'demo.qcow2'));
		const store = newStore();
		const first = await store.acquire('demo', 'vm-aaaaaaaa');
		first.release();
		expect(first).toMatchObject({sha256: sha('content one'), path: join(images, '.bases', `${sha('content one')}.qcow2`)});
		expect(await readFile(first.path, 'utf8')).toBe('content one');
		expect((await stat(first.path)).mode & 0o777).toBe(0o444);
		expect((await store.acquire('demo', 'vm-bbbbbbbb')).path).toBe(first.path);
		expect([count('image hashed'), count('base made')]).toEqual([1, 1]);

		// A restarted agent: the sidecar knows the file, nothing is read again.
		expect((await newStore().acquire('demo', 'vm-cccccccc')).path).toBe(first.path);
		expect([count('image hashed'), count('base made')]).toEqual([1, 1]);
	});

	it('an image overwritten in place or replaced with mv: the next VM gets the new content, the old copy is untouched', async () => {
		const demo = join(images, 'demo.qcow2');
		await writeFile(demo, 'old');
		const store = newStore();
		const old = await store.acquire('demo', 'vm-aaaaaaaa');
		const inode = (await stat(demo)).ino;
		await writeFile(demo, 'new in place');
		expect((await stat(demo)).ino).toBe(inode);
		const inPlace = await store.acquire('demo', 'vm-bbbbbbbb');
		expect(inPlace.sha256).toBe(sha('new in place'));
		await writeFile(join(images, 'next.tmp'), 'moved in');
		await rename(join(images, 'next.tmp'), demo);
		const moved = await store.acquire('demo', 'vm-cccccccc');
		expect(moved.sha256).toBe(sha('moved in'));
		expect(await readFile(old.path, 'utf8')).toBe('old');
		expect(await bases()).toEqual([sha('old'), sha('new in place'), sha('moved in')].map(value => `${value}.qcow2`).sort());
	});

	it('concurrent starts of a new image hash it once and make one copy', async () => {
		await writeFile(join(images, 'demo.qcow2'), 'x'.repeat(4 * 1024 * 1024));
		const store = newStore();
		const acquired = await Promise.all(Array.from({length: 6}, async (_, index) => store.acquire('demo', `vm-aaaaaaa${'abcdef'[index]}`)));
		expect(new Set(acquired.map(base => base.path)).size).toBe(1);
		expect([count('image hashed'), count('base made')]).toEqual([1, 1]);
		expect((await readdir(join(images, '.bases'))).filter(name => name.startsWith('.tmp-'))).toEqual([]);
	});

	it('a migration in: the base held is used whatever the image; else the image must have that content', async () => {
		const demo = join(images, 'demo.qcow2');
		await writeFile(demo, 'v1');
		const store = newStore();
		await store.acquire('demo', 'vm-aaaaaaaa');
		await writeFile(demo, 'v2');
		expect((await store.acquire('demo', 'vm-bbbbbbbb', {sha256: sha('v1')})).path).toBe(join(images, '.bases', `${sha('v1')}.qcow2`));
		expect((await store.acquire('demo', 'vm-cccccccc', {sha256: sha('v2')})).path).toBe(join(images, '.bases', `${sha('v2')}.qcow2`));
		const refused = store.acquire('demo', 'vm-dddddddd', {sha256: sha('v0')});
		await expect(refused).rejects.toThrow(BaseMismatchError);
		await expect(refused).rejects.toThrow(`host host-t's image demo differs from the VM's base (sha256 ${sha('v0')}, the image's is ${sha('v2')})`);
		expect(await readdir(join(images, '.bases', 'users'))).not.toContain(sha('v0'));
	});

	it('the clean-up removes a base only when no VM of any agent marks it and no image has its content', async () => {
		const demo = join(images, 'demo.qcow2');
		const store = newStore('agent1');
		const other = newStore('agent2');
		// gone: its VM's directory is gone (deleted). live: its VM is stopped, its directory stays.
		// shared: another agent's VM uses it. current: the image's content now.
		for (const [content, vmId, owner] of [['gone', 'vm-gonegone', store], ['live', 'vm-livelive', store], ['shared', 'vm-sharedvm', other], ['current', 'vm-currentv', store]] as const) {
			await writeFile(demo, content);
			(await owner.acquire('demo', vmId)).release();
		}

		await mkdir(join(state, 'vm-livelive'));
		await mkdir(join(state, 'vm-currentv'));
		const {removed} = await store.collect();
		expect(removed).toEqual([sha('gone')]);
		expect(await bases()).toEqual([sha('live'), sha('shared'), sha('current')].map(value => `${value}.qcow2`).sort());
		// Another agent's marker is never its to judge, even though agent1's state root has no such VM.
		expect(await readdir(join(images, '.bases', 'users', sha('shared')))).toEqual(['agent2.vm-sharedvm']);

		// The current image's base stays once its VM is gone too; the stopped VM's goes once it is deleted.
		await rm(join(state, 'vm-currentv'), {recursive: true});
		await rm(join(state, 'vm-livelive'), {recursive: true});
		expect((await store.collect()).removed).toEqual([sha('live')]);
		expect(await bases()).toEqual([sha('shared'), sha('current')].map(value => `${value}.qcow2`).sort());
	});

	it('the clean-up removes temporary files left by a crash, not a copy under way', async () => {
		await mkdir(join(images, '.bases'));
		const old = join(images, '.bases', `.tmp-${A}-deadbeef`);
		const fresh = join(images, '.bases', `.tmp-${B}-deadbeef`);
		await writeFile(old, 'half a copy');
		await writeFile(fresh, 'a copy under way');
		const longAgo = new Date(Date.now() - STALE_TEMPORARY_MS - 60_000);
		await utimes(old, longAgo, longAgo);
		await newStore().collect();
		expect((await readdir(join(images, '.bases'))).sort()).toEqual([`.tmp-${B}-deadbeef`]);
	});

	it('the clean-up never removes a base a start under way holds', async () => {
		await writeFile(join(images, 'demo.qcow2'), 'held');
		const store = newStore();
		const held = await store.acquire('demo', 'vm-heldheld');
		await writeFile(join(images, 'demo.qcow2'), 'other');
		// No directory for the VM yet (the start is before it), the image changed: only the pin holds it.
		expect((await store.collect()).removed).toEqual([]);
		held.release();
		expect((await store.collect()).removed).toEqual([sha('held')]);
	});
});
