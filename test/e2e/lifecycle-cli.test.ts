/**
 * The VM lifecycle as an operator drives it through `kloud-tui` (issue 12), on a real agent, broker
 * and QEMU (TCG) with the demo image on user-mode networking (a NIC, so a MAC to keep, and nothing
 * on the machine's own network): `stop` keeps the VM, listed `stopped` with its disk; `start VM_ID`
 * boots it again with the same id and MAC; `reboot` (ACPI, then `--hard`) makes the guest boot
 * again; `delete` refuses without a terminal and without --yes, asks on a terminal naming what is
 * lost (a no keeps it), and with a yes (or --yes) removes it from every list and its state from the
 * host; the TUI's `D` asks the same before it deletes. One guest boots (and reboots) throughout.
 */
import {existsSync} from 'node:fs';
import {readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {READY_MARKER} from '../../agent/image/demo-image.js';
import {CLI_BIN, createCloud, pidByName, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {openTerminal, type Terminal} from '../helpers/tmux.js';

type Vm = {
	id: string;
	host: string;
	state: string;
	pid: number | null;
	mac: string | null;
	exit: string | null;
	desired?: string;
	restart?: string;
	disk?: {sizeBytes: number; usedBytes: number};
};
type ListJson = {vms: Vm[]};

/** Generous for a loaded CI box: a lone boot takes ≈ 6–10 s here. */
const BOOT_TIMEOUT_MS = 120_000;

let cloud: Cloud;
let agent: AgentHandle;
/** The guest the tests follow through its life. */
let guest: Vm | undefined;
const terminals: Terminal[] = [];

async function listed(id: string): Promise<Vm | undefined> {
	const list = await cloud.cliJson<ListJson>(['list']);
	return list.vms.find(vm => vm.id === id);
}

/** How many times the guest reached userspace, read off its console file (cheap: no CLI rounds while it boots). */
async function boots(vm: Vm): Promise<number> {
	const text = await readFile(join(agent.stateDir, vm.id, 'console.log'), 'utf8').catch(() => '');
	return text.split(READY_MARKER).length - 1;
}

async function waitForBoots(vm: Vm, count: number, what: string): Promise<void> {
	await waitFor(async () => (await boots(vm)) >= count, BOOT_TIMEOUT_MS, `${what} (${READY_MARKER} ${count} times on ${vm.id}'s console)`).catch((error: unknown) => {
		throw new Error(`${(error as Error).message}\n--- agent ---\n${agent.logs().slice(-4000)}`, {cause: error});
	});
}

/** A real terminal running `kloud-tui ARGS` against the test's cloud; the exit status is printed after it. */
async function terminalRunning(args: string): Promise<Terminal> {
	const terminal = await openTerminal(`node ${CLI_BIN} ${args} --amqp ${cloud.amqpUrl} --namespace ${cloud.namespace}; echo CLI-EXITED=$?; sleep 600`, {width: 160, height: 30});
	terminals.push(terminal);
	return terminal;
}

beforeAll(async () => {
	cloud = await createCloud('lifecli');
	await linkDemoImage(cloud.imagesDir);
	agent = await cloud.startAgent('life-a', ['--network-default', 'user', '--memory', '128']);
}, 300_000);

afterAll(async () => {
	await Promise.all(terminals.map(async terminal => terminal.close()));
	await cloud?.cleanup();
}, 60_000);

describe('the VM lifecycle through kloud-tui', () => {
	it('stop keeps the VM: listed stopped with its disk; start VM_ID boots it again with the same id and MAC', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--restart', 'on-failure', '--disk-size', '256M']);
		guest = vm;
		expect(vm).toMatchObject({state: 'running', restart: 'on-failure', desired: 'running'});
		expect(vm.mac).toMatch(/^[\da-f]{2}(:[\da-f]{2}){5}$/);
		await waitForBoots(vm, 1, 'the first boot');

		const stopped = await cloud.cliJson<Vm>(['stop', vm.id, '--grace', '30']);
		expect(stopped).toMatchObject({id: vm.id, state: 'stopped', desired: 'stopped', pid: null});
		expect(await pidByName(vm.id)).toBeUndefined();
		const whileStopped = await listed(vm.id);
		expect(whileStopped).toMatchObject({id: vm.id, state: 'stopped', mac: vm.mac, desired: 'stopped'});
		expect(whileStopped?.disk?.sizeBytes).toBe(256 * 1024 * 1024);
		expect(whileStopped?.disk?.usedBytes).toBeGreaterThan(0);
		const human = await cloud.cli(['list']);
		expect(human.stdout).toMatch(new RegExp(`${vm.id}\\s+demo\\s+stopped`));

		// A repeated stop answers with the VM as it is.
		expect(await cloud.cliJson<Vm>(['stop', vm.id])).toMatchObject({id: vm.id, state: 'stopped'});

		const booted = await cloud.cliJson<Vm>(['start', vm.id]);
		expect(booted).toMatchObject({id: vm.id, host: vm.host, mac: vm.mac, desired: 'running'});
		expect(['starting', 'running']).toContain(booted.state);
		expect(booted.pid).not.toBe(vm.pid);
		await waitForBoots(vm, 2, 'the boot after start VM_ID');
		expect(await listed(vm.id)).toMatchObject({id: vm.id, state: 'running', mac: vm.mac});

		// `boot` is the same command, and a boot of a running VM answers with it as it is.
		expect(await cloud.cliJson<Vm>(['boot', vm.id])).toMatchObject({id: vm.id, state: 'running', pid: booted.pid});
	}, 300_000);

	it('reboot: the guest boots again (ACPI), and again with --hard', async () => {
		expect(guest, 'the guest of the previous test').toBeDefined();
		const vm = guest!;
		const before = await boots(vm);
		const soft = await cloud.cli(['reboot', vm.id]);
		expect(soft.code, soft.stderr).toBe(0);
		expect(soft.stdout.trim()).toBe(`rebooted ${vm.id} on ${vm.host} (ACPI reboot)`);
		await waitForBoots(vm, before + 1, 'the boot after an ACPI reboot');

		const hard = await cloud.cliJson<Vm>(['reboot', vm.id, '--hard']);
		expect(hard).toMatchObject({id: vm.id, mac: vm.mac});
		await waitForBoots(vm, before + 2, 'the boot after a hard reset');
		expect(await listed(vm.id)).toMatchObject({id: vm.id, state: 'running'});
	}, 300_000);

	it('delete without a terminal and without --yes refuses with status 2 and keeps the VM', async () => {
		expect(guest, 'the guest of the first test').toBeDefined();
		const vm = guest!;
		const result = await cloud.cli(['delete', vm.id]);
		expect(result.code).toBe(2);
		expect(result.stderr.trim()).toBe(`kloud-tui: delete removes ${vm.id}'s disk, user-data seed and IP for good: add --yes to delete without a terminal to confirm on`);
		expect(await listed(vm.id)).toMatchObject({id: vm.id, state: 'running'});
	}, 60_000);

	it('delete on a terminal names what is lost; n keeps the VM', async () => {
		const vm = guest!;
		const terminal = await terminalRunning(`delete ${vm.id}`);
		const question = await terminal.waitForScreen(text => text.includes('[y/N]'), 'the delete question', 30_000);
		expect(question.replaceAll('\n', '')).toMatch(new RegExp(`delete ${vm.id} on ${vm.host} \\(running\\): its disk \\(\\S+/256M used\\), user-data seed and IP (\\S+|lease) are lost for good\\. Delete\\? \\[y/N\\]`));
		await terminal.keys('n', 'Enter');
		expect(await terminal.waitForScreen(text => text.includes('CLI-EXITED='), 'the CLI to end')).toMatch(new RegExp(`kept ${vm.id} \\(not deleted\\)\\s+CLI-EXITED=0`));
		expect(await listed(vm.id)).toMatchObject({id: vm.id, state: 'running'});
	}, 60_000);

	it('delete --yes removes the VM from the list and its state from the host; a repeated delete is answered', async () => {
		const vm = guest!;
		const deleted = await cloud.cliJson<Vm>(['delete', vm.id, '--yes']);
		expect(deleted).toMatchObject({id: vm.id, state: 'deleted'});
		expect(await listed(vm.id)).toBeUndefined();
		expect(await pidByName(vm.id)).toBeUndefined();
		expect(existsSync(join(agent.stateDir, vm.id))).toBe(false);
		// Idempotent: its host answers a delete sent again with the VM as it was deleted; without
		// --host no host lists it any more, and the CLI says so.
		expect(await cloud.cliJson<Vm>(['delete', vm.id, '--yes', '--host', vm.host])).toMatchObject({id: vm.id, state: 'deleted'});
		const again = await cloud.cli(['delete', vm.id, '--yes']);
		expect(again.code).toBe(1);
		expect(again.stderr.trim()).toBe(`kloud-tui: no VM ${vm.id} on any of 1 hosts that answered`);
	}, 120_000);

	it('list says why: a VM whose QEMU was killed shows its restarts (on-failure) or stays crashed (no)', async () => {
		const restarted = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--restart', 'on-failure']);
		const crashed = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--restart', 'no']);
		process.kill(restarted.pid!, 'SIGKILL');
		process.kill(crashed.pid!, 'SIGKILL');
		let human = '';
		await waitFor(
			async () => {
				human = (await cloud.cli(['list'])).stdout;
				return new RegExp(`${restarted.id}\\s+blank\\s+running \\(restarts 1/\\d+\\)`).test(human) && new RegExp(`${crashed.id}\\s+blank\\s+crashed \\(killed by SIGKILL\\)`).test(human);
			},
			30_000,
			'the restarted VM running again and the other crashed',
		).catch((error: unknown) => {
			throw new Error(`${(error as Error).message}\n--- list ---\n${human}`, {cause: error});
		});
		const again = await listed(restarted.id);
		expect(again?.pid).not.toBe(restarted.pid);
		expect(await listed(crashed.id)).toMatchObject({state: 'crashed', restart: 'no', pid: null});
		for (const vm of [restarted, crashed]) {
			expect(await cloud.cliJson<Vm>(['delete', vm.id, '--yes'])).toMatchObject({state: 'deleted'});
		}
	}, 120_000);

	it("the TUI's D asks, naming the disk, seed and IP, and deletes on y", async () => {
		// A blank VM (firmware only, no boot to wait for) stopped first: D deletes a stopped VM too.
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank']);
		await cloud.cliJson<Vm>(['stop', vm.id, '--kill']);
		const terminal = await terminalRunning('--refresh 0.5');
		await terminal.waitForScreen(text => new RegExp(`${vm.id}\\s+blank\\s+stopped`).test(text), 'the stopped VM in the table', 30_000);
		// Only this VM is left in the namespace: the selection is on it.
		await terminal.keys('D');
		await terminal.waitForScreen(text => text.includes(`delete ${vm.id} on ${vm.host}: its disk, seed and IP`) && text.includes('are lost [y/N]'), 'the delete question');
		await terminal.keys('y');
		await terminal.waitForScreen(text => text.includes(`deleted ${vm.id} on ${vm.host}`), 'the delete result', 30_000);
		expect(await listed(vm.id)).toBeUndefined();
		await terminal.keys('q');
		await terminal.waitForScreen(text => text.includes('CLI-EXITED=0'), 'the TUI to end');
	}, 120_000);
});
