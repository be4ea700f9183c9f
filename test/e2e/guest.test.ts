/**
 * A real guest through the agent: the demo image booted by `kloud-tui start --image demo` on a real
 * agent and broker (QEMU TCG, user-mode networking: nothing on the machine's own network), its
 * NoCloud seed (hostname = VM id, SSH keys, user-data that runs at boot), its serial console read
 * back with `kloud-tui console`, and a graceful stop in which the guest powers itself off. User-data
 * over 64 KiB is refused by the CLI and, sent raw, by the agent.
 *
 * Two guests boot in all (boots under TCG are CPU-heavy on two shared cores); everything else uses
 * the blank image (firmware only).
 */
import {execFile} from 'node:child_process';
import {randomUUID} from 'node:crypto';
import {existsSync} from 'node:fs';
import {readFile, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import amqp from 'amqplib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {findReadyMarker, POWEROFF_MARKER, USERDATA_DONE_MARKER} from '../../agent/image/demo-image.js';
import {MAX_USER_DATA_BYTES} from '../../source/protocol/index.js';
import {createCloud, pidByName, waitFor, waitForAgentConsole, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';

const run = promisify(execFile);

type Vm = {id: string; host: string; image: string; state: string; pid: number | null; ip: string | null; network?: string; exit: string | null};
type ConsoleJson = {vmId: string; host: string; data: string; sizeBytes: number};

/** Generous for a loaded CI box: a lone boot takes ≈ 6–10 s here. */
const MARKER_TIMEOUT_MS = 90_000;
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmJ3aAQ0fYqVZ9vH4cS0e2iqDqz0l0m4f8S2bq7Xk1x ops@kloud-test';
const USER_DATA = `#!/bin/sh
# kloud test user-data: runs once at boot, its output on the serial console.
echo "USERDATA-HELLO from $(hostname) uid=$(id -u)"
`;

const figures: Record<string, string> = {};
let cloud: Cloud;
let agent: AgentHandle;
/** The guest booted with user-data, shared by the tests that follow its life. */
let guest: Vm | undefined;

/** Waits (reading the console file) until `isDone`. */
async function waitForConsole(vm: Vm, what: string, isDone: (text: string) => boolean): Promise<{text: string; ms: number}> {
	return waitForAgentConsole(agent, vm.id, what, isDone, MARKER_TIMEOUT_MS);
}

beforeAll(async () => {
	cloud = await createCloud('guest');
	const image = await linkDemoImage(cloud.imagesDir);
	figures.imageMiB = (image.sizeBytes / 2 ** 20).toFixed(1);
	// User mode: a NIC with QEMU's own DHCP, and nothing made on this machine's network.
	agent = await cloud.startAgent('guest-a', ['--network-default', 'user', '--memory', '128']);
}, 300_000);

afterAll(async () => {
	await cloud?.cleanup();
	if (Object.keys(figures).length > 0) {
		console.info(`guest figures: ${JSON.stringify(figures)}`);
	}
}, 60_000);

describe('the demo image through the agent', () => {
	it('boots with --user-data and --ssh-key: the marker names the VM, the script\'s output is on `kloud-tui console`', async () => {
		const userDataFile = join(cloud.dir, 'user-data.sh');
		const keyFile = join(cloud.dir, 'id_test.pub');
		await writeFile(userDataFile, USER_DATA);
		await writeFile(keyFile, `# a comment line\n${SSH_KEY}\n\n`);
		const started = performance.now();
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--user-data', userDataFile, '--ssh-key', keyFile]);
		guest = vm;
		figures.startReplyMs = String(Math.round(performance.now() - started));
		expect(vm).toMatchObject({state: 'running', image: 'demo', network: 'user', host: 'guest-a'});

		// The seed rides along as a read-only CD-ROM in the VM's own directory.
		const iso = join(agent.stateDir, vm.id, 'seed.iso');
		const cmdline = (await readFile(`/proc/${vm.pid}/cmdline`, 'utf8')).split('\0');
		expect(cmdline).toContain(`file=${iso},format=raw,if=ide,media=cdrom,readonly=on`);
		expect((await run('isoinfo', ['-d', '-i', iso])).stdout).toMatch(/^Volume id: cidata$/m);
		expect((await run('isoinfo', ['-R', '-i', iso, '-x', '/user-data'])).stdout).toBe(USER_DATA);
		expect((await run('isoinfo', ['-R', '-i', iso, '-x', '/meta-data'])).stdout).toBe(
			`instance-id: ${vm.id}\nlocal-hostname: ${vm.id}\npublic-keys:\n  - ${JSON.stringify(SSH_KEY)}\n`,
		);

		const ready = await waitForConsole(vm, 'the ready marker', text => findReadyMarker(text) !== undefined);
		figures.startReplyToMarkerMs = String(Math.round(ready.ms));
		const done = await waitForConsole(vm, 'the end of the user-data', text => text.includes(USERDATA_DONE_MARKER));
		figures.startReplyToUserDataDoneMs = String(Math.round(ready.ms + done.ms));

		// What an operator sees: the console through the broker, from the VM's agent.
		const result = await cloud.cli(['console', vm.id]);
		expect(result.code, result.stderr).toBe(0);
		expect(findReadyMarker(result.stdout)).toEqual({hostname: vm.id, ip: '10.0.2.15'});
		expect(result.stdout).toMatch(new RegExp(`^USERDATA-HELLO from ${vm.id} uid=0$`, 'm'));
		expect(result.stdout).toContain(`${USERDATA_DONE_MARKER} status=0`);
		// CRLFs from the serial line are turned into plain newlines.
		expect(result.stdout).not.toContain('\r');
		expect(result.stdout.indexOf('KLOUD-READY')).toBeLessThan(result.stdout.indexOf('USERDATA-HELLO'));

		// `--bytes`: only the tail, and the whole log's size to tell how much was left out.
		const tail = await cloud.cliJson<ConsoleJson>(['console', vm.id, '--bytes', '40']);
		expect(tail).toMatchObject({vmId: vm.id, host: 'guest-a'});
		expect(Buffer.byteLength(tail.data)).toBeLessThanOrEqual(40);
		expect(tail.sizeBytes).toBeGreaterThan(100);
		expect(tail.data).not.toContain('KLOUD-READY');
		// The newest 40 bytes of the log (after the user-data's end, the guest's serial shell greets).
		const log = await readFile(join(agent.stateDir, vm.id, 'console.log'));
		expect(tail.data).toBe(log.subarray(-40).toString('utf8'));
	}, 180_000);

	it('a graceful stop: the guest powers itself off long before the grace period ends; disk and seed are kept', async () => {
		expect(guest, 'the guest of the previous test').toBeDefined();
		const vm = guest!;
		const started = performance.now();
		const result = await cloud.cli(['stop', vm.id, '--grace', '30', '--json']);
		const stopMs = performance.now() - started;
		expect(result.code, result.stderr).toBe(0);
		const stopped = JSON.parse(result.stdout) as Vm;
		figures.gracefulStopCliMs = String(Math.round(stopMs));
		expect(stopped).toMatchObject({id: vm.id, state: 'stopped', exit: 'powered off'});
		// acpid handles the power button in ≈ 0.2 s; a kill would come only after 30 s.
		expect(stopMs).toBeLessThan(10_000);
		expect(agent.logs()).toMatch(new RegExp(`"vm":"${vm.id}".*"how":"powered off"`));
		expect(await pidByName(vm.id)).toBeUndefined();
		// Stop keeps the VM: disk, console and seed ISO alike (a delete removes them).
		for (const file of ['disk.qcow2', 'console.log', 'seed.iso']) {
			expect(existsSync(join(agent.stateDir, vm.id, file))).toBe(true);
		}

		guest = undefined;
	}, 60_000);

	it('without user-data the guest still gets its seed: its hostname is the VM id', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'demo']);
		const iso = join(agent.stateDir, vm.id, 'seed.iso');
		expect((await run('isoinfo', ['-R', '-i', iso, '-x', '/user-data'])).stdout).toBe('#cloud-config\n');
		const ready = await waitForConsole(vm, 'the ready marker', text => findReadyMarker(text) !== undefined);
		figures.secondStartReplyToMarkerMs = String(Math.round(ready.ms));
		expect(findReadyMarker(ready.text)).toEqual({hostname: vm.id, ip: '10.0.2.15'});
		expect(ready.text).not.toContain(USERDATA_DONE_MARKER);

		// Watch the power-off from the console file: the stop removes it once QEMU has exited.
		let consoleAtExit = '';
		const path = join(agent.stateDir, vm.id, 'console.log');
		const watcher = setInterval(() => {
			void readFile(path, 'utf8').then(text => {
				consoleAtExit = text;
			}, () => {});
		}, 20);
		const started = performance.now();
		const stopped = await cloud.cliJson<Vm>(['stop', vm.id, '--grace', '30']);
		clearInterval(watcher);
		figures.secondGracefulStopCliMs = String(Math.round(performance.now() - started));
		expect(stopped).toMatchObject({state: 'stopped', exit: 'powered off'});
		expect(consoleAtExit).toContain(POWEROFF_MARKER);
	}, 180_000);
});

describe('user-data limits', () => {
	it('the CLI refuses user-data over 64 KiB before sending anything', async () => {
		const file = join(cloud.dir, 'big-user-data');
		await writeFile(file, `#!/bin/sh\n${'#'.repeat(MAX_USER_DATA_BYTES)}\n`);
		const before = (await cloud.cliJson<{vms: Vm[]}>(['list'])).vms.length;
		const result = await cloud.cli(['start', '--image', 'blank', '--user-data', file]);
		expect(result.code).toBe(2);
		expect(result.stderr.trim()).toBe(`kloud-tui: --user-data ${file} is ${MAX_USER_DATA_BYTES + 11} bytes, over the limit of 65536 bytes (64 KiB): keep it to a script that fetches the rest`);
		expect((await cloud.cliJson<{vms: Vm[]}>(['list'])).vms).toHaveLength(before);
	});

	it('the CLI refuses a private key or a missing file given as --ssh-key', async () => {
		const privateKey = join(cloud.dir, 'id_test');
		await writeFile(privateKey, '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n');
		const refused = await cloud.cli(['start', '--image', 'blank', '--ssh-key', privateKey]);
		expect(refused.code).toBe(2);
		expect(refused.stderr).toMatch(/invalid SSH public key .*\(this is a private key: give the \.pub file\)/);
		const missing = await cloud.cli(['start', '--image', 'blank', '--ssh-key', join(cloud.dir, 'nope.pub')]);
		expect(missing.code).toBe(2);
		expect(missing.stderr).toMatch(/cannot read --ssh-key .*nope\.pub/);
	});

	it('exactly 64 KiB is accepted, and lands in the seed byte for byte', async () => {
		const file = join(cloud.dir, 'max-user-data');
		const userData = `#!/bin/sh\n${'#'.repeat(MAX_USER_DATA_BYTES - 11)}\n`;
		expect(Buffer.byteLength(userData)).toBe(MAX_USER_DATA_BYTES);
		await writeFile(file, userData);
		// The blank image: firmware only, nothing boots, but the seed is made all the same.
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--user-data', file]);
		const {stdout} = await run('isoinfo', ['-R', '-i', join(agent.stateDir, vm.id, 'seed.iso'), '-x', '/user-data'], {maxBuffer: 1024 * 1024});
		expect(stdout).toBe(userData);
		await cloud.cliJson(['stop', vm.id, '--kill']);
	});

	it('the agent refuses over-64-KiB user-data sent raw, with one clear error reply and no VM', async () => {
		const connection = await amqp.connect(cloud.amqpUrl);
		try {
			const channel = await connection.createChannel();
			const answers: Array<Record<string, unknown>> = [];
			await channel.consume('amq.rabbitmq.reply-to', message => message && answers.push(JSON.parse(message.content.toString()) as Record<string, unknown>), {noAck: true});
			const id = randomUUID();
			const request = {v: 1, id, from: 'guest-test', ts: Date.now(), type: 'vm.start', body: {image: 'blank', userData: 'x'.repeat(MAX_USER_DATA_BYTES + 1)}};
			channel.publish(`${cloud.namespace}.commands`, 'host.guest-a', Buffer.from(JSON.stringify(request)), {replyTo: 'amq.rabbitmq.reply-to', correlationId: id});
			await waitFor(() => answers.length > 0, 5000, 'the agent\'s reply');
			await new Promise(resolve => setTimeout(resolve, 300));
			expect(answers).toHaveLength(1);
			expect(answers[0]).toMatchObject({type: 'reply', re: id, from: 'guest-a', ok: false, code: 'bad_request'});
			expect(answers[0]!.reason).toBe('vm.start: body.userData: user-data is 65537 bytes, over the limit of 65536 bytes (64 KiB): keep it to a script that fetches the rest');
			await channel.close();
		} finally {
			await connection.close();
		}

		expect((await cloud.cliJson<{vms: Vm[]}>(['list'])).vms.filter(vm => vm.state !== 'stopped')).toEqual([]);
	});
});
