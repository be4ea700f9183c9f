/**
 * The VM lifecycle end to end: a real broker, a real agent, real QEMU (TCG) booting the demo image
 * on the private network, all inside a network namespace this test makes (`--netns`). One guest
 * lives through the whole file (boots under TCG are CPU-heavy on two cores): stop → boot again →
 * soft reboot → hard reboot → kill -9 (restarted by its policy) → power loss (agent and every QEMU
 * SIGKILLed, TAPs and dnsmasq gone) → booted again by the next agent → deleted. Its user-data counts
 * its boots in a file on its own disk (the demo guest's root is an initramfs; its disk, /dev/vda, is
 * the FAT filesystem it booted from) and `sync`s: each boot's `BOOT-COUNT n` on the console proves
 * the guest saw what it wrote, and flushed, before a stop, a SIGKILL or a power loss.
 */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {readdir, readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {KloudClient, KloudRequestError} from '../../source/broker/client.js';
import type {Vm} from '../../source/protocol/index.js';
import {createCloud, qemuPidsUnder, waitFor, waitForAgentConsole, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {createLab, missingNetworkTools, type Lab} from '../helpers/netns.js';

const run = promisify(execFile);
const missing = await missingNetworkTools();

/** Generous for a loaded CI box: a lone boot takes ≈ 6–10 s here. */
const BOOT_TIMEOUT_MS = 120_000;
const USER_DATA = `#!/bin/sh
# Counts this VM's boots in a file on its disk, flushed: a later boot sees the count.
mkdir -p /mnt/disk
mount -t vfat /dev/vda /mnt/disk || { echo "BOOT-COUNT-ERROR mount"; exit 1; }
count=$(cat /mnt/disk/boots.txt 2> /dev/null || echo 0)
count=$((count + 1))
echo "$count" > /mnt/disk/boots.txt
sync
umount /mnt/disk
echo "BOOT-COUNT $count"
`;

const figures: Record<string, number> = {};
let lab: Lab;
let netns = '';
let cloud: Cloud;
let agent: AgentHandle;
let client: KloudClient;
/** The guest that lives through the file. */
let guest: Vm;
/** A blank (firmware-only) VM that runs, and one that is stopped, for the power loss. */
let runner: Vm;
let sleeper: Vm;

const agentArgs = (): string[] => ['--netns', netns, '--network-default', 'private', '--memory', '128'];

async function listVms(): Promise<Vm[]> {
	const round = await client.list({timeoutMs: 5000});
	return round.replies.flatMap(snapshot => snapshot.vms);
}

async function vmNow(id: string): Promise<Vm | undefined> {
	return (await listVms()).find(vm => vm.id === id);
}

/** Waits (reading the console file: cheap) until the guest printed `BOOT-COUNT n`; resolves with the time it took. */
async function waitForBootCount(vm: Vm, count: number): Promise<number> {
	const pattern = new RegExp(`^BOOT-COUNT ${count}\\r?$`, 'm');
	return (await waitForAgentConsole(agent, vm.id, `BOOT-COUNT ${count}`, text => pattern.test(text), BOOT_TIMEOUT_MS)).ms;
}

/** The `vm-*` TAPs in the test's namespace. */
async function taps(): Promise<string[]> {
	const {stdout} = await run('ip', ['-n', netns, '-j', 'link', 'show']);
	return (JSON.parse(stdout) as Array<{ifname: string}>).map(link => link.ifname).filter(name => name.startsWith('vm-')).sort();
}

/** The VMs with an address reservation on the private network. */
async function reservations(): Promise<string[]> {
	return (await readdir(join(agent.stateDir, 'network', 'hosts')).catch(() => [])).sort();
}

async function vmDirs(): Promise<string[]> {
	return (await readdir(agent.stateDir)).filter(name => name.startsWith('vm-')).sort();
}

beforeAll(async () => {
	if (missing.length > 0) {
		return;
	}

	lab = createLab();
	netns = await lab.addNamespace('life');
	cloud = await createCloud('life');
	await linkDemoImage(cloud.imagesDir);
	agent = await cloud.startAgent('life-a', agentArgs());
	const name = `kloud-test-life-${randomBytes(3).toString('hex')}`;
	client = await KloudClient.connect({url: cloud.amqpUrl, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true});
}, 300_000);

afterAll(async () => {
	await client?.close();
	await cloud?.cleanup();
	await lab?.cleanup();
	if (Object.keys(figures).length > 0) {
		console.info(`lifecycle figures (ms): ${JSON.stringify(figures)}`);
	}
}, 60_000);

describe.skipIf(missing.length > 0)('the VM lifecycle with real QEMU', () => {
	it('stop keeps the VM and its disk; boot runs it again with the same id and MAC, and the guest sees the file it wrote', async () => {
		guest = await client.start({image: 'demo', host: 'life-a', userData: USER_DATA}, {timeoutMs: 30_000});
		expect(guest).toMatchObject({state: 'running', network: 'private', desired: 'running', restart: 'on-failure'});
		await waitForBootCount(guest, 1);

		const stopped = await client.stop(guest.id, {host: 'life-a', graceSeconds: 30, timeoutMs: 10_000});
		expect(stopped).toMatchObject({id: guest.id, state: 'stopped', desired: 'stopped', exit: 'powered off', pid: null});
		expect(await vmNow(guest.id)).toMatchObject({state: 'stopped'});
		expect(await vmDirs()).toContain(guest.id);
		expect(await taps()).not.toContain(guest.id);

		const started = performance.now();
		const booted = await client.boot(guest.id, {timeoutMs: 30_000});
		figures.bootAgainReplyMs = Math.round(performance.now() - started);
		expect(booted).toMatchObject({id: guest.id, mac: guest.mac, state: 'running', desired: 'running'});
		expect(booted.pid).not.toBe(guest.pid);
		expect(await taps()).toContain(guest.id);
		figures.bootAgainToUserDataMs = Math.round(figures.bootAgainReplyMs + (await waitForBootCount(guest, 2)));
		guest = booted;
	}, 240_000);

	it('reboot: soft (power button, booted again in a new process) and hard (system_reset, same process); the guest boots again each time', async () => {
		const soft = await client.reboot(guest.id, {timeoutMs: 60_000});
		expect(soft).toMatchObject({id: guest.id, state: 'running'});
		expect(soft.pid).not.toBe(guest.pid);
		await waitForBootCount(guest, 3);

		const hard = await client.reboot(guest.id, {hard: true, timeoutMs: 30_000});
		expect(hard).toMatchObject({id: guest.id, state: 'running', pid: soft.pid});
		await waitForBootCount(guest, 4);
		guest = hard;
		const error = await client.reboot('vm-zzzzzzzz', {host: 'life-a', timeoutMs: 5000}).catch((error_: unknown) => error_);
		expect(error).toMatchObject({code: 'unknown_vm'});
	}, 240_000);

	// This case once read the VM in the instant the agent was taking in the kill: listed running with no
	// process (pid null), the old exit and count. The agent now switches both at once (agent-lifecycle.test.ts).
	it('on-failure: kill -9 of its QEMU → restarted after its backoff; the write flushed before the kill is on its disk', async () => {
		const killedAt = performance.now();
		process.kill(guest.pid!, 'SIGKILL');
		let restarted: Vm | undefined;
		await waitFor(
			async () => {
				restarted = await vmNow(guest.id);
				return restarted?.state === 'running' && restarted.pid !== guest.pid;
			},
			30_000,
			'the VM restarted by its policy',
		);
		figures.killToRunningAgainMs = Math.round(performance.now() - killedAt);
		expect(restarted, `agent log:\n${agent.logs().slice(-8000)}`).toMatchObject({restarts: {count: 1, limit: 5}, exit: 'killed by SIGKILL', desired: 'running'});
		await waitForBootCount(guest, 5);
		guest = restarted!;
	}, 180_000);

	it('power loss: the agent and every QEMU SIGKILLed, TAPs and dnsmasq gone; the next agent boots again what ran, stopped stays stopped, no leaks', async () => {
		runner = await client.start({image: 'blank', host: 'life-a'}, {timeoutMs: 30_000});
		sleeper = await client.start({image: 'blank', host: 'life-a'}, {timeoutMs: 30_000});
		await client.stop(sleeper.id, {host: 'life-a', kill: true, timeoutMs: 10_000});
		expect(await taps()).toEqual([guest.id, runner.id].sort());

		const bootsSeen = Math.max(0, ...[...(await readFile(join(agent.stateDir, guest.id, 'console.log'), 'utf8')).matchAll(/^BOOT-COUNT (\d+)\r?$/gm)].map(match => Number(match[1])));
		// The host loses power: everything at once, nothing cleaned up.
		await agent.stop('SIGKILL');
		const {stdout} = await run('ip', ['netns', 'pids', netns]);
		for (const pid of stdout.split('\n').filter(Boolean).map(Number)) {
			process.kill(pid, 'SIGKILL');
		}

		for (const link of await taps()) {
			await run('ip', ['-n', netns, 'link', 'del', link]);
		}

		await run('ip', ['-n', netns, 'link', 'del', 'kloud0']).catch(() => {});

		const started = performance.now();
		agent = await cloud.startAgent('life-a', agentArgs());
		await waitFor(
			async () => {
				const vms = await listVms();
				return [guest.id, runner.id].every(id => vms.find(vm => vm.id === id)?.state === 'running');
			},
			60_000,
			'the VMs that ran to run again',
		);
		figures.powerLossRecoveryMs = Math.round(performance.now() - started);
		const vms = await listVms();
		expect(vms.find(vm => vm.id === sleeper.id)).toMatchObject({state: 'stopped', desired: 'stopped'});
		// A reboot of a stopped VM says what to do instead.
		const refused = await client.reboot(sleeper.id, {host: 'life-a', timeoutMs: 5000}).catch((error_: unknown) => error_);
		expect(refused).toMatchObject({code: 'invalid_state', message: expect.stringContaining('boot it (vm.boot) instead')});
		expect(vms.find(vm => vm.id === guest.id)).toMatchObject({mac: guest.mac, state: 'running'});
		expect(agent.logs()).toContain('VM booted again after the agent started');
		await waitForBootCount(guest, bootsSeen + 1);
		// No leaks: a TAP and a reservation for each running VM only, a directory for each VM listed.
		expect(await taps()).toEqual([guest.id, runner.id].sort());
		expect(await reservations()).toEqual([guest.id, runner.id].sort());
		expect(await vmDirs()).toEqual([guest.id, runner.id, sleeper.id].sort());
	}, 240_000);

	it('a crash loop gives up: crashed, with its restarts and last exit', async () => {
		let pid = (await vmNow(runner.id))!.pid!;
		for (let kill = 0; kill <= 5; kill++) {
			process.kill(pid, 'SIGKILL');
			if (kill < 5) {
				const before = pid;
				await waitFor(
					async () => {
						const vm = await vmNow(runner.id);
						pid = vm?.state === 'running' && vm.pid !== null ? vm.pid : before;
						return pid !== before;
					},
					60_000,
					`restart ${kill + 1}`,
				);
			}
		}

		await waitFor(async () => (await vmNow(runner.id))?.state === 'crashed', 30_000, 'the agent to give up');
		expect(await vmNow(runner.id)).toMatchObject({state: 'crashed', restarts: {count: 5, limit: 5}, exit: 'killed by SIGKILL', pid: null});
		expect(await taps()).not.toContain(runner.id);
	}, 120_000);

	it('--disk-size: the overlay has that virtual size (never below the image), its use is listed', async () => {
		const error = await client.start({image: 'blank', host: 'life-a', diskMb: 16}, {timeoutMs: 10_000}).catch((error_: unknown) => error_);
		expect(error).toBeInstanceOf(KloudRequestError);
		expect((error as Error).message).toMatch(/smaller than image "blank" \(64 MiB\)/);
		const big = await client.start({image: 'blank', host: 'life-a', diskMb: 256, network: 'none'}, {timeoutMs: 30_000});
		const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(agent.stateDir, big.id, 'disk.qcow2')])).stdout) as {'virtual-size': number};
		expect(info['virtual-size']).toBe(256 * 2 ** 20);
		const listed = await vmNow(big.id);
		expect(listed?.disk?.sizeBytes).toBe(256 * 2 ** 20);
		expect(listed?.disk?.usedBytes).toBeGreaterThan(0);
		expect(await client.delete(big.id, {timeoutMs: 10_000})).toMatchObject({state: 'deleted'});
	});

	it('power loss with 10 (paused) VMs: the next agent boots them all again, 4 at a time', async () => {
		const paused = await cloud.startAgent('life-p', ['--start-paused', '--network-default', 'none', '--max-vms', '20', '--memory', '32', '--cpu-overcommit', '64']);
		const vms = await Promise.all(Array.from({length: 10}, async () => client.start({image: 'blank', host: 'life-p'}, {timeoutMs: 60_000})));
		await paused.stop('SIGKILL');
		for (const vm of vms) {
			process.kill(vm.pid!, 'SIGKILL');
		}

		await waitFor(async () => (await qemuPidsUnder(paused.stateDir)).length === 0, 10_000, 'every QEMU gone');
		const started = performance.now();
		const again = await cloud.startAgent('life-p', ['--start-paused', '--network-default', 'none', '--max-vms', '20', '--memory', '32', '--cpu-overcommit', '64']);
		const readyMs = performance.now() - started;
		await waitFor(() => again.logs().includes('"msg":"recovery done"'), 60_000, 'the recovery to finish');
		figures.powerLoss10AgentReadyMs = Math.round(readyMs);
		figures.powerLoss10AllRunningMs = Math.round(performance.now() - started);
		const listed = (await listVms()).filter(vm => vm.host === 'life-p');
		expect(listed.map(vm => [vm.id, vm.state]).sort()).toEqual(vms.map(vm => [vm.id, 'running']).sort());
		expect((await qemuPidsUnder(again.stateDir)).length).toBe(10);
		const recovery = JSON.parse(again.logs().split('\n').find(line => line.includes('"msg":"recovery done"'))!) as {vms: number; failures: number; ms: number};
		expect(recovery).toMatchObject({vms: 10, failures: 0});
		figures.powerLoss10RecoveryMs = recovery.ms;
		await again.stop('SIGKILL');
		for (const pid of await qemuPidsUnder(again.stateDir)) {
			process.kill(pid, 'SIGKILL');
		}
	}, 180_000);

	it('delete removes disk, seed, TAP, lease and record, running or stopped; a repeated delete answers the same', async () => {
		const started = performance.now();
		const deleted = await client.delete(guest.id, {timeoutMs: 10_000});
		figures.deleteRunningMs = Math.round(performance.now() - started);
		expect(deleted).toMatchObject({id: guest.id, state: 'deleted'});
		expect(await client.delete(sleeper.id, {host: 'life-a', timeoutMs: 10_000})).toMatchObject({state: 'deleted'});
		expect(await client.delete(runner.id, {host: 'life-a', timeoutMs: 10_000})).toMatchObject({state: 'deleted'});
		expect(await client.delete(guest.id, {host: 'life-a', timeoutMs: 10_000})).toMatchObject({id: guest.id, state: 'deleted'});
		expect(await vmDirs()).toEqual([]);
		expect(await taps()).toEqual([]);
		expect(await reservations()).toEqual([]);
		expect((await listVms()).map(vm => vm.id)).toEqual([]);
		const leases = await readFile(join(agent.stateDir, 'network', 'dnsmasq.leases'), 'utf8').catch(() => '');
		expect(leases).not.toContain(guest.mac!);
	});
});
