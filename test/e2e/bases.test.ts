/**
 * Content-addressed bases end to end: a real broker, a real agent, real QEMU (TCG) and the demo
 * image. A VM's overlay is backed by an immutable copy of its image's content
 * (`<images>/.bases/<sha256>.qcow2`), so an operator who overwrites `demo.qcow2` in place (same
 * inode: `cp new.qcow2 demo.qcow2`) changes what new VMs get and never the disk of a VM that exists:
 * the stopped VM boots again and finds on its disk the file it wrote before; a new VM is on the new
 * content; `images` never lists the copies; deleting the VMs removes the base nothing uses any more
 * and keeps the one the image has now.
 */
import {execFile} from 'node:child_process';
import {createHash} from 'node:crypto';
import {copyFile, readdir, readFile, stat} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import {createCloud, waitFor, waitForAgentConsole, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {demoImage} from '../helpers/demo-image.js';

const run = promisify(execFile);
const BOOT_TIMEOUT_MS = 120_000;
/** The guest's disk is the FAT filesystem it booted from: a file written and synced there outlives a stop. */
const USER_DATA = `#!/bin/sh
mkdir -p /mnt/disk
mount -t vfat /dev/vda /mnt/disk || { echo "MARK-ERROR mount"; exit 1; }
if [ -f /mnt/disk/mark.txt ]; then
	echo "MARK-FOUND $(cat /mnt/disk/mark.txt)"
else
	echo "written-$(hostname)" > /mnt/disk/mark.txt
	sync
	echo "MARK-WRITTEN"
fi
umount /mnt/disk
`;

const figures: Record<string, number> = {};
let cloud: Cloud;
let agent: AgentHandle;
let client: KloudClient;

async function sha256Of(path: string): Promise<string> {
	return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function backingOf(vmId: string): Promise<string> {
	const {stdout} = await run('qemu-img', ['info', '-U', '--output=json', join(agent.stateDir, vmId, 'disk.qcow2')]);
	return (JSON.parse(stdout) as {'backing-filename': string})['backing-filename'];
}

async function bases(): Promise<string[]> {
	return (await readdir(join(cloud.imagesDir, '.bases')).catch(() => [])).filter(name => name.endsWith('.qcow2')).sort();
}

beforeAll(async () => {
	cloud = await createCloud('bases');
	// A file of its own, not the symlink to the shared cache the other tests use: this test overwrites it.
	await copyFile((await demoImage()).path, join(cloud.imagesDir, 'demo.qcow2'));
	agent = await cloud.startAgent('bases-a', ['--memory', '128']);
	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: 'bases-test', sender: 'bases-test', reconnect: true});
}, 300_000);

afterAll(async () => {
	await client?.close();
	await cloud?.cleanup();
	if (Object.keys(figures).length > 0) {
		console.info(`bases figures (ms): ${JSON.stringify(figures)}`);
	}
}, 60_000);

describe('an image overwritten in place', () => {
	it('leaves a stopped VM its disk (it boots again and finds its file); a new VM gets the new content; the copy nothing uses goes', async () => {
		const demo = join(cloud.imagesDir, 'demo.qcow2');
		const oldSha = await sha256Of(demo);
		let started = performance.now();
		const vm = await client.start({image: 'demo', host: 'bases-a', userData: USER_DATA}, {timeoutMs: 60_000});
		figures.firstStartReplyMs = Math.round(performance.now() - started);
		expect(await backingOf(vm.id)).toBe(join(cloud.imagesDir, '.bases', `${oldSha}.qcow2`));
		const copy = await stat(join(cloud.imagesDir, '.bases', `${oldSha}.qcow2`));
		expect(copy.mode & 0o777).toBe(0o444);
		await waitForAgentConsole(agent, vm.id, 'MARK-WRITTEN', text => text.includes('MARK-WRITTEN'), BOOT_TIMEOUT_MS);
		expect(await client.stop(vm.id, {host: 'bases-a', graceSeconds: 30, timeoutMs: 40_000})).toMatchObject({state: 'stopped'});

		// The operator's new build, written over the old file: same inode, other content (a blank qcow2 boots nothing).
		const inode = (await stat(demo)).ino;
		await run('cp', [join(cloud.imagesDir, 'blank.qcow2'), demo]);
		expect((await stat(demo)).ino).toBe(inode);
		const newSha = await sha256Of(demo);
		expect(newSha).not.toBe(oldSha);

		started = performance.now();
		await client.boot(vm.id, {host: 'bases-a', timeoutMs: 30_000});
		const found = await waitForAgentConsole(agent, vm.id, 'MARK-FOUND', text => text.includes('MARK-FOUND'), BOOT_TIMEOUT_MS);
		figures.bootAgainToMarkMs = Math.round(performance.now() - started);
		expect(found.text).toContain(`MARK-FOUND written-${vm.id}`);
		expect(await backingOf(vm.id)).toBe(join(cloud.imagesDir, '.bases', `${oldSha}.qcow2`));

		started = performance.now();
		const fresh = await client.start({image: 'demo', host: 'bases-a'}, {timeoutMs: 60_000});
		figures.newContentStartReplyMs = Math.round(performance.now() - started);
		expect(await backingOf(fresh.id)).toBe(join(cloud.imagesDir, '.bases', `${newSha}.qcow2`));
		expect(await bases()).toEqual([`${oldSha}.qcow2`, `${newSha}.qcow2`].sort());

		// The copies are never images.
		const listed = await client.images({timeoutMs: 5000});
		expect(listed.replies.flatMap(reply => reply.images.map(image => image.name)).sort()).toEqual(['blank', 'demo']);

		// The new VM's base is the image's content now: kept. The old one's is nobody's once it goes.
		await client.delete(fresh.id, {host: 'bases-a', timeoutMs: 30_000});
		await client.delete(vm.id, {host: 'bases-a', graceSeconds: 0, timeoutMs: 30_000});
		await waitFor(async () => (await bases()).length === 1, 10_000, 'the old base to be removed');
		expect(await bases()).toEqual([`${newSha}.qcow2`]);
		expect(await readdir(join(cloud.imagesDir, '.bases', 'users', newSha)).catch(() => [])).toEqual([]);
	}, 300_000);
});
