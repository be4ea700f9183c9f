/**
 * SSH into demo guests, for real, as root, only inside network namespaces this test makes: one
 * "host" namespace with an agent (`--netns`) whose private network holds one guest, and a "LAN"
 * namespace whose dnsmasq serves the public bridge the other guest is on (as network.test.ts sets
 * it up). Both guests are started with `--ssh-key`; Debian's OpenSSH client, run inside the namespace
 * that reaches each guest, logs in as root with that key and runs a command, and a wrong key is
 * refused. Two demo guests boot (real QEMU, TCG).
 */
import {execFile} from 'node:child_process';
import {access, readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {addLan, createLab, missingNetworkTools, sh, type Lab} from '../helpers/netns.js';

type Vm = {id: string; state: string; ip: string | null; network?: string};

const LAN_ROUTER = '10.98.0.1';
const LAN_HOST = '10.98.0.2/24';

const missing = [...(await missingNetworkTools()), ...(await access('/usr/bin/ssh').then(() => [], () => ['/usr/bin/ssh (openssh-client)']))];
const figures: Record<string, string> = {};

let lab: Lab;
let cloud: Cloud;
let host: AgentHandle;
let netHost = '';
let netLan = '';
let key = '';
let wrongKey = '';
const vms: Record<'private' | 'public', Vm | undefined> = {private: undefined, public: undefined};

/** `ssh -i KEY root@IP COMMAND` inside `netns`: exit code and output, never a throw. */
async function ssh(netns: string, identity: string, ip: string, command: string): Promise<{code: number; stdout: string; stderr: string}> {
	const args = [
		'netns', 'exec', netns, 'ssh', '-i', identity,
		// A fresh guest's host key is new to us; no agent or other keys may answer for the one given.
		'-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${join(cloud.dir, 'known_hosts')}`,
		'-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR', `root@${ip}`, command,
	];
	return new Promise(resolve => {
		execFile('ip', args, {timeout: 60_000}, (error, stdout, stderr) => {
			resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr});
		});
	});
}

async function consoleOf(id: string): Promise<string> {
	return readFile(join(host.stateDir, id, 'console.log'), 'utf8').catch(() => '');
}

/** The guest's address from its ready line (`KLOUD-READY … ip=…`): once it is there, dropbear runs. */
async function readyIp(vm: Vm): Promise<string> {
	let ip: string | undefined;
	await waitFor(
		async () => {
			await new Promise(resolve => setTimeout(resolve, 250));
			ip = /KLOUD-READY hostname=\S+ ip=(\d+\.\d+\.\d+\.\d+)/.exec(await consoleOf(vm.id))?.[1];
			return ip !== undefined;
		},
		180_000,
		`${vm.id}'s ready line with an address`,
	);
	return ip!;
}

describe.skipIf(missing.length > 0)('SSH into demo guests with the key of --ssh-key', () => {
	beforeAll(async () => {
		lab = createLab();
		cloud = await createCloud('ssh');
		await linkDemoImage(cloud.imagesDir);
		key = join(cloud.dir, 'id_ed25519');
		wrongKey = join(cloud.dir, 'wrong_ed25519');
		await Promise.all([key, wrongKey].map(async path => sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `kloud-test ${path}`, '-f', path])));

		netHost = await lab.addNamespace('h');
		netLan = await lab.addNamespace('lan');
		await addLan(lab, {host: netHost, lan: netLan, router: LAN_ROUTER, hostAddress: LAN_HOST, range: '10.98.0.100,10.98.0.150', dir: cloud.dir});
		host = await cloud.startAgent('host-s', ['--netns', netHost, '--private-slot', '0', '--public-bridge', 'br-lan', '--uplink', 'up0', '--network-default', 'private', '--memory', '128']);
		// Both boot at once: the test waits for the slower of the two only once.
		const start = async (network: string): Promise<Vm> => cloud.cliJson<Vm>(['start', '--image', 'demo', '--network', network, '--ssh-key', `${key}.pub`, '--timeout', '60']);
		[vms.private, vms.public] = await Promise.all([start('private'), start('public')]);
	}, 240_000);

	afterAll(async () => {
		await cloud?.cleanup();
		await lab?.cleanup();
		if (Object.keys(figures).length > 0) {
			console.log(`ssh figures: ${JSON.stringify(figures)}`);
		}
	}, 60_000);

	it('a private guest: ssh -i KEY root@IP from its host\'s namespace runs the command; a wrong key is refused', async () => {
		const vm = vms.private!;
		expect(vm).toMatchObject({network: 'private', state: 'running'});
		const ip = await readyIp(vm);
		const started = performance.now();
		const answer = await ssh(netHost, key, ip, 'echo $((6*7)); id -u; hostname');
		figures.privateLoginMs = String(Math.round(performance.now() - started));
		expect(answer.stderr).toBe('');
		expect(answer).toMatchObject({code: 0, stdout: `42\n0\n${vm.id}\n`});

		const refused = await ssh(netHost, wrongKey, ip, 'echo $((6*7))');
		expect(refused.code).toBe(255);
		expect(refused.stdout).toBe('');
		expect(refused.stderr).toContain('Permission denied (publickey)');
		// Nor is a password asked for: dropbear offers public keys only.
		expect(refused.stderr).not.toContain('password');
	}, 240_000);

	it('a public guest: reached from the LAN by its DHCP address, with the same key', async () => {
		const vm = vms.public!;
		expect(vm).toMatchObject({network: 'public', state: 'running'});
		const ip = await readyIp(vm);
		expect(ip.startsWith('10.98.0.')).toBe(true);
		const answer = await ssh(netLan, key, ip, 'echo $((6*7))');
		expect(answer.stderr).toBe('');
		expect(answer).toMatchObject({code: 0, stdout: '42\n'});
		expect((await ssh(netLan, wrongKey, ip, 'true')).code).toBe(255);
	}, 240_000);

	it('the guests\' host keys differ (made at each VM\'s first boot, not baked into the image)', async () => {
		const hostKeys = (await readFile(join(cloud.dir, 'known_hosts'), 'utf8')).split('\n').filter(Boolean).map(line => line.split(' ').slice(1).join(' '));
		expect(hostKeys).toHaveLength(2);
		expect(hostKeys[0]).toMatch(/^ssh-ed25519 /);
		expect(hostKeys[0]).not.toBe(hostKeys[1]);
	}, 10_000);
});
