/**
 * Live migration between two real agents on one real broker, with real QEMU (TCG) and the demo
 * image: a guest counting on its console every 100 ms moves from mig-a to mig-b with
 * `kloud-tui migrate` and keeps counting (no reboot: the counter goes on from where it was, the
 * boot marker does not come again), keeps its id, owner and uptime, is listed on mig-b only, and
 * what it wrote to its disk before is on mig-b's overlay. Bad input (same host, unknown host, a
 * host without the image, a cordoned host, a full host, a stopped VM, a user-mode VM) each gets a
 * clear answer and leaves the VM running where it was, with nothing left on the other host.
 *
 * The VMs have no NIC (`--network none`): both agents run on this machine and migrate over
 * 127.0.0.1 (`--migration-address`); private networking across hosts is the network test's.
 */
import {mkdir, readdir, readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient} from '../../source/broker/client.js';
import type {Vm} from '../../source/protocol/index.js';
import {createCloud, qemuPidsUnder, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';

const BOOT_MS = 120_000;
const DISK_MARK = 'KLOUD-MIGRATION-DISK-MARK';
/** Writes a mark on the disk (past the image's 14 MiB, on a 64 MiB disk), then counts every 100 ms. */
const USER_DATA = `#!/bin/sh
echo "${DISK_MARK}-$(hostname)" | dd of=/dev/vda bs=512 seek=65536 conv=notrunc,fsync 2>/dev/null
sync
echo "DISK-WRITTEN"
( i=0; while :; do i=$((i+1)); echo "COUNT $i"; sleep 0.1; done ) > /dev/console 2>&1 < /dev/null &
`;

type MigrationJson = {vm: Vm; from: string; totalMs: number; downtimeMs: number; ramMs: number};

const figures: Record<string, number | string> = {};
let cloud: Cloud;
let client: KloudClient;
let hostA: AgentHandle;
let hostB: AgentHandle;
let guest: Vm;

const agentArgs = (extra: readonly string[] = []) => ['--network-default', 'none', '--memory', '128', '--migration-address', '127.0.0.1', ...extra];

function counts(text: string): number[] {
	return [...text.matchAll(/^COUNT (\d+)\r?$/gm)].map(match => Number(match[1]));
}

async function consoleOf(agent: AgentHandle, vmId: string): Promise<string> {
	return readFile(join(agent.stateDir, vmId, 'console.log'), 'utf8').catch(() => '');
}

async function lastCount(agent: AgentHandle, vmId: string): Promise<number> {
	return counts(await consoleOf(agent, vmId)).at(-1) ?? 0;
}

/** The VM dirs an agent keeps (its state root holds a few files of its own besides). */
async function vmDirs(agent: AgentHandle): Promise<string[]> {
	return (await readdir(agent.stateDir).catch(() => [])).filter(name => /^vm-[a-z]{8}$/.test(name));
}

/** The guest still runs on mig-a and keeps counting; `host` has nothing of it. */
async function expectStillOnA(host: AgentHandle): Promise<void> {
	const before = await lastCount(hostA, guest.id);
	await waitFor(async () => (await lastCount(hostA, guest.id)) > before, 30_000, 'the guest to keep counting on mig-a');
	expect(await qemuPidsUnder(join(hostA.stateDir, guest.id))).toEqual([guest.pid]);
	expect(await vmDirs(host)).toEqual([]);
	expect(await qemuPidsUnder(host.stateDir)).toEqual([]);
}

beforeAll(async () => {
	cloud = await createCloud('mig');
	await linkDemoImage(cloud.imagesDir);
	hostA = await cloud.startAgent('mig-a', agentArgs());
	hostB = await cloud.startAgent('mig-b', agentArgs());
	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: 'mig-test', sender: 'mig-test', reconnect: true});
	guest = await client.start({image: 'demo', host: 'mig-a', userData: USER_DATA, diskMb: 64, restart: 'no'}, {timeoutMs: 60_000});
	await waitFor(async () => (await lastCount(hostA, guest.id)) >= 20, BOOT_MS, 'the guest to count on its console');
	expect(await consoleOf(hostA, guest.id)).toContain('DISK-WRITTEN');
}, 300_000);

afterAll(async () => {
	await client?.close();
	await cloud?.cleanup();
	console.info(`migration figures: ${JSON.stringify(figures)}`);
}, 60_000);

describe('a migration that cannot be done is refused, and the VM runs on where it was', () => {
	it('to its own host, or to a host that is not there', async () => {
		const same = await cloud.cli(['migrate', guest.id, '--to', 'mig-a']);
		expect(same.code).toBe(1);
		expect(same.stderr).toMatch(/is on host mig-a already: name another host/);

		const nowhere = await cloud.cli(['migrate', guest.id, '--to', 'mig-nowhere']);
		expect(nowhere.code).toBe(1);
		expect(nowhere.stderr).toMatch(/no live host mig-nowhere/);
		await expectStillOnA(hostB);
	}, 120_000);

	it('to a host without its base image', async () => {
		const images = join(cloud.dir, 'img-c');
		await mkdir(images);
		const hostC = await cloud.startAgent('mig-c', agentArgs(), {imagesDir: images});
		await waitFor(async () => (await cloud.cliJson<Array<{id: string}>>(['hosts'])).some(host => host.id === 'mig-c'), 20_000, 'mig-c to be listed');
		const result = await cloud.cli(['migrate', guest.id, '--to', 'mig-c']);
		expect(result.code).toBe(1);
		expect(result.stderr).toMatch(/host mig-c has no image "demo"/);
		await expectStillOnA(hostC);
		await hostC.stop();
	}, 120_000);

	it('to a cordoned host, and to a full one', async () => {
		const cordoned = await cloud.startAgent('mig-d', agentArgs(['--cordoned']));
		const full = await cloud.startAgent('mig-e', agentArgs(['--memory-budget', '64']));
		const toCordoned = await cloud.cli(['migrate', guest.id, '--to', 'mig-d']);
		expect(toCordoned.code).toBe(1);
		expect(toCordoned.stderr).toMatch(/host mig-d is cordoned/);
		const toFull = await cloud.cli(['migrate', guest.id, '--to', 'mig-e']);
		expect(toFull.code).toBe(1);
		expect(toFull.stderr).toMatch(/host mig-e cannot take VM .*memory/);
		await expectStillOnA(cordoned);
		await expectStillOnA(full);
		await cordoned.stop();
		await full.stop();
	}, 120_000);

	it('to a host whose QEMU cannot listen on its migration address: it removes what it prepared', async () => {
		// 192.0.2.1 (TEST-NET-1) is no address of this machine: the NBD server cannot start.
		const unreachable = await cloud.startAgent('mig-g', ['--network-default', 'none', '--memory', '128', '--migration-address', '192.0.2.1']);
		const result = await cloud.cli(['migrate', guest.id, '--to', 'mig-g']);
		expect(result.code).toBe(1);
		expect(result.stderr).toMatch(/host mig-g could not prepare VM .*nbd-server-start/);
		await expectStillOnA(unreachable);
		await unreachable.stop();
	}, 120_000);

	it('when the destination host dies while the RAM moves: the guest runs on at the source, the destination leaves nothing', async () => {
		// A slow RAM stream (1 MiB/s) leaves time to pull the plug on mig-b mid-way.
		await hostA.stop();
		hostA = await cloud.startAgent('mig-a', agentArgs(['--migration-bandwidth', '1']));
		const pending = cloud.cli(['migrate', guest.id, '--to', 'mig-b']);
		await waitFor(() => hostA.logs().includes('disk in step, moving RAM'), 60_000, 'the RAM to start moving');
		const incoming = await qemuPidsUnder(hostB.stateDir);
		expect(incoming).toHaveLength(1);
		// The host dies: its agent and its QEMU at once.
		await hostB.stop('SIGKILL');
		for (const pid of incoming) {
			process.kill(pid, 'SIGKILL');
		}

		const result = await pending;
		expect(result.code).toBe(1);
		expect(result.stderr).toMatch(new RegExp(`migration of VM ${guest.id} to host mig-b failed \\(moving its RAM\\).*it keeps running on host mig-a`));
		const before = await lastCount(hostA, guest.id);
		await waitFor(async () => (await lastCount(hostA, guest.id)) > before + 10, 30_000, 'the guest to keep counting on mig-a');
		expect(await qemuPidsUnder(join(hostA.stateDir, guest.id))).toEqual([guest.pid]);

		// mig-b comes back: the VM it was taking in is removed, not adopted nor booted.
		hostB = await cloud.startAgent('mig-b', agentArgs());
		await waitFor(async () => (await vmDirs(hostB)).length === 0, 20_000, 'mig-b to remove the half-prepared VM');
		expect(await qemuPidsUnder(hostB.stateDir)).toEqual([]);
		await hostA.stop();
		hostA = await cloud.startAgent('mig-a', agentArgs());
	}, 240_000);

	it('when the source agent restarts while the RAM moves: the new agent cancels it, the guest runs on at the source, the destination removes its copy', async () => {
		await hostA.stop();
		hostA = await cloud.startAgent('mig-a', agentArgs(['--migration-bandwidth', '1']));
		const pending = cloud.cli(['migrate', guest.id, '--to', 'mig-b', '--timeout', '15']);
		await waitFor(() => hostA.logs().includes('disk in step, moving RAM'), 60_000, 'the RAM to start moving');
		expect(await qemuPidsUnder(hostB.stateDir)).toHaveLength(1);
		await hostA.stop('SIGKILL');
		hostA = await cloud.startAgent('mig-a', agentArgs());
		await waitFor(() => hostA.logs().includes('cancelling a migration cut short by an agent restart'), 30_000, 'mig-a to cancel the migration');
		await waitFor(async () => (await vmDirs(hostB)).length === 0, 30_000, 'mig-b to remove its incoming copy');
		expect((await pending).code).toBe(1);
		await expectStillOnA(hostB);
	}, 240_000);

	it('of a stopped VM, and of a user-mode VM', async () => {
		const blank = await client.start({image: 'blank', host: 'mig-a'}, {timeoutMs: 30_000});
		await client.stop(blank.id, {host: 'mig-a', kill: true, timeoutMs: 10_000});
		const stopped = await cloud.cli(['migrate', blank.id, '--to', 'mig-b']);
		expect(stopped.code).toBe(1);
		expect(stopped.stderr).toMatch(new RegExp(`cannot migrate VM ${blank.id} on host mig-a: it is stopped, and only a running VM migrates live`));
		await client.delete(blank.id, {host: 'mig-a', timeoutMs: 10_000});

		const user = await client.start({image: 'blank', host: 'mig-a', network: 'user'}, {timeoutMs: 30_000});
		const userMode = await cloud.cli(['migrate', user.id, '--to', 'mig-b']);
		expect(userMode.code).toBe(1);
		expect(userMode.stderr).toMatch(/user-mode networking/);
		await client.delete(user.id, {host: 'mig-a', timeoutMs: 10_000});
		await expectStillOnA(hostB);
	}, 120_000);
});

describe('live migration', () => {
	it('moves the counting guest to mig-b: it counts on without a reboot, same id, its disk content there', async () => {
		// The mark is on mig-a's overlay (the base image does not have it).
		expect((await readFile(join(hostA.stateDir, guest.id, 'disk.qcow2'))).includes(`${DISK_MARK}-${guest.id}`)).toBe(true);
		const before = await client.list({timeoutMs: 5000});
		const onA = before.replies.flatMap(snapshot => snapshot.vms).find(vm => vm.id === guest.id)!;
		const countBefore = await lastCount(hostA, guest.id);

		const started = performance.now();
		// No --to: the other live host with room (mig-b, the only one left).
		const result = await cloud.cliJson<MigrationJson>(['migrate', guest.id]);
		figures.cliMs = Math.round(performance.now() - started);
		figures.totalMs = result.totalMs;
		figures.ramMs = result.ramMs;
		figures.downtimeMs = result.downtimeMs;
		expect(result.from).toBe('mig-a');
		expect(result.vm).toMatchObject({id: guest.id, host: 'mig-b', state: 'running', image: 'demo', mac: guest.mac, owner: guest.owner, createdAt: guest.createdAt, memoryMb: 128});
		expect(result.vm.uptimeSeconds).toBeGreaterThanOrEqual(onA.uptimeSeconds ?? 0);

		// Gone from mig-a: no process, no files; listed on mig-b only.
		expect(await qemuPidsUnder(hostA.stateDir)).toEqual([]);
		expect(await vmDirs(hostA)).toEqual([]);
		const after = await client.list({timeoutMs: 5000});
		expect(after.replies.flatMap(snapshot => snapshot.vms.map(vm => `${vm.id}@${vm.host}:${vm.state}`))).toEqual([`${guest.id}@mig-b:running`]);
		expect(await qemuPidsUnder(join(hostB.stateDir, guest.id))).toEqual([result.vm.pid]);

		// It counts on from where it was: no reset, no second boot.
		await waitFor(async () => counts(await consoleOf(hostB, guest.id)).length >= 20, 60_000, 'the guest to count on mig-b');
		const onB = counts(await consoleOf(hostB, guest.id));
		figures.countBefore = countBefore;
		figures.firstCountOnB = onB[0]!;
		expect(onB[0]).toBeGreaterThan(countBefore);
		expect(onB.every((count, index) => index === 0 || count === onB[index - 1]! + 1)).toBe(true);
		expect(await consoleOf(hostB, guest.id)).not.toContain('KLOUD-READY');
		const console = await cloud.cliJson<{host: string; data: string}>(['console', guest.id]);
		expect(console.host).toBe('mig-b');

		// What it wrote before is on mig-b's disk.
		expect((await readFile(join(hostB.stateDir, guest.id, 'disk.qcow2'))).includes(`${DISK_MARK}-${guest.id}`)).toBe(true);
		expect(hostA.logs()).toContain('"migration done"');
	}, 600_000);
});

describe('drain', () => {
	it('cordons a host and moves its 3 VMs away; a cordoned host takes no start; uncordon', async () => {
		// The guest is on mig-b now; two more (firmware only) join it.
		const blanks = [await client.start({image: 'blank', host: 'mig-b'}, {timeoutMs: 30_000}), await client.start({image: 'blank', host: 'mig-b'}, {timeoutMs: 30_000})];
		const countBefore = await lastCount(hostB, guest.id);
		const drained = await cloud.cli(['drain', 'mig-b', '--json']);
		expect(drained.code, drained.stderr).toBe(0);
		const report = JSON.parse(drained.stdout) as {host: string; cordoned: boolean; migrated: Array<{vmId: string; ok: boolean; to: string}>};
		expect(report.migrated.map(entry => `${entry.vmId}:${entry.ok}:${entry.to}`).sort()).toEqual([guest.id, ...blanks.map(vm => vm.id)].map(id => `${id}:true:mig-a`).sort());
		expect(drained.stderr).toContain(`migrated ${guest.id} to mig-a`);

		const list = await client.list({timeoutMs: 5000});
		expect(list.replies.find(snapshot => snapshot.host.id === 'mig-b')?.vms).toEqual([]);
		expect(list.replies.find(snapshot => snapshot.host.id === 'mig-b')?.host.cordoned).toBe(true);
		expect(await qemuPidsUnder(hostB.stateDir)).toEqual([]);
		await waitFor(async () => (await lastCount(hostA, guest.id)) > countBefore, 30_000, 'the guest to count on mig-a again');
		expect(counts(await consoleOf(hostA, guest.id))[0]).toBeGreaterThan(countBefore);

		// Cordoned: a start sent there is refused; uncordoned, it is taken again.
		await expect(client.start({image: 'blank', host: 'mig-b'}, {timeoutMs: 10_000})).rejects.toThrow(/cordoned/);
		const uncordoned = await cloud.cliJson<{id: string; cordoned?: boolean}>(['uncordon', 'mig-b']);
		expect(uncordoned).toMatchObject({id: 'mig-b'});
		expect(uncordoned.cordoned).toBeUndefined();
		const later = await client.start({image: 'blank', host: 'mig-b'}, {timeoutMs: 30_000});
		expect(later.host).toBe('mig-b');
	}, 600_000);
});
