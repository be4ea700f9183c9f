/**
 * Networking end to end, as root, only inside network namespaces this test makes: two "hosts"
 * (namespaces joined by a veth underlay) with an agent each (the agents stay in the root namespace,
 * where the broker is, and put bridges, TAPs, dnsmasq and QEMU in their host's namespace with
 * `--netns`), plus a "LAN" namespace whose dnsmasq plays the router for the public bridge. Real
 * QEMU (TCG) boots the demo image: a kernel and busybox that DHCP on eth0, print
 * `KLOUD-READY hostname=… ip=…` on the serial console and serve HTTP on port 80.
 *
 * Three guests boot in all (two private, on different hosts; one public): boots under TCG are
 * CPU-heavy on two cores. The second private guest's user-data pings the first one from inside.
 */
import {readFile, readlink, stat, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {isLocalUnicastMac} from '../../agent/network.js';
import {createCloud, pidByName, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {addLan, createLab, listNamespaces, missingNetworkTools, pidsMentioning, sh, type Lab} from '../helpers/netns.js';

type Vm = {id: string; host: string; state: string; pid: number | null; ip: string | null; mac: string | null; network?: string; exit: string | null};
type ListJson = {vms: Vm[]};

const UNDERLAY_A = '192.0.2.1';
const UNDERLAY_B = '192.0.2.2';
const LAN_ROUTER = '10.99.0.1';
const LAN_HOST_A = '10.99.0.2/24';

const missing = await missingNetworkTools();
const figures: Record<string, string> = {};

let lab: Lab;
let cloud: Cloud;
let hostA: AgentHandle;
let hostB: AgentHandle;
let netA = '';
let netB = '';
let netLan = '';
/** The guests booted here, by role. */
const vms: Record<'a' | 'b' | 'pub', Vm | undefined> = {a: undefined, b: undefined, pub: undefined};

const agentArgs = {
	a: () => ['--netns', netA, '--underlay', UNDERLAY_A, '--private-slot', '0', '--public-bridge', 'br-lan', '--uplink', 'up0', '--network-default', 'private'],
	b: () => ['--netns', netB, '--underlay', UNDERLAY_B, '--private-slot', '1', '--network-default', 'private'],
};

async function list(): Promise<Vm[]> {
	return (await cloud.cliJson<ListJson>(['list', '--timeout', '5'])).vms;
}

/**
 * Waits until the DHCP server's leases file (read cheaply, every 100 ms: a CLI round per poll would
 * eat a core that the booting guests need) has a lease for `mac`, then until `list --json` shows
 * that IP for VM `id`. Returns the IP and the milliseconds until each.
 */
async function waitForLease(leasesFile: string, vm: Vm, timeoutMs: number): Promise<{ip: string; leaseMs: number; listMs: number}> {
	const started = performance.now();
	let ip: string | undefined;
	const deadline = Date.now() + timeoutMs;
	while (ip === undefined) {
		const line = (await readFile(leasesFile, 'utf8').catch(() => '')).split('\n').find(entry => entry.split(' ')[1] === vm.mac);
		ip = line?.split(' ')[2];
		if (ip === undefined) {
			if (Date.now() > deadline) {
				throw new Error(`no DHCP lease for ${vm.id} (${vm.mac}) in ${leasesFile} after ${timeoutMs} ms`);
			}

			await new Promise(resolve => setTimeout(resolve, 100));
		}
	}

	const leaseMs = performance.now() - started;
	let listed: string | null = null;
	await waitFor(
		async () => {
			listed = (await list()).find(entry => entry.id === vm.id)?.ip ?? null;
			return listed !== null;
		},
		10_000,
		`the IP of ${vm.id} in list --json`,
	);
	expect(listed).toBe(ip);
	return {ip, leaseMs, listMs: performance.now() - started};
}

async function consoleOf(agent: AgentHandle, id: string): Promise<string> {
	return readFile(join(agent.stateDir, id, 'console.log'), 'utf8').catch(() => '');
}

async function links(netns: string): Promise<string[]> {
	return JSON.parse(await sh('ip', ['-n', netns, '-j', 'link', 'show'])).map((link: {ifname: string}) => link.ifname);
}

function inRange(ip: string, from: string, to: string): boolean {
	const last = (address: string) => Number(address.split('.')[3]);
	return ip.split('.').slice(0, 3).join('.') === from.split('.').slice(0, 3).join('.') && last(ip) >= last(from) && last(ip) <= last(to);
}

function rtt(pingOutput: string): string {
	return /rtt min\/avg\/max\/mdev = ([\d./]+) ms/.exec(pingOutput)?.[1] ?? '?';
}

describe.skipIf(missing.length > 0)('networking across two hosts (namespaces), VXLAN, public bridge', () => {
	beforeAll(async () => {
		lab = createLab();
		cloud = await createCloud('net');
		await linkDemoImage(cloud.imagesDir);

		netA = await lab.addNamespace('a');
		netB = await lab.addNamespace('b');
		netLan = await lab.addNamespace('lan');
		await lab.link({netns: netA, name: 'ul0', address: `${UNDERLAY_A}/24`}, {netns: netB, name: 'ul0', address: `${UNDERLAY_B}/24`});
		// Host A's "uplink" to the LAN, with an address and default route the agent will move to its bridge.
		await addLan(lab, {host: netA, lan: netLan, router: LAN_ROUTER, hostAddress: LAN_HOST_A, range: '10.99.0.100,10.99.0.150', dir: cloud.dir});

		[hostA, hostB] = await Promise.all([cloud.startAgent('host-a', agentArgs.a()), cloud.startAgent('host-b', agentArgs.b())]);
		await waitFor(async () => (await cloud.cliJson<unknown[]>(['hosts'])).length === 2, 10_000, 'both hosts in the roster');
	}, 240_000);

	afterAll(async () => {
		// Cleanup runs whatever failed: agents and QEMU first, then everything left in the namespaces.
		await cloud?.cleanup();
		await lab?.cleanup();
		if (Object.keys(figures).length > 0) {
			console.log(`network figures: ${JSON.stringify(figures)}`);
		}
	}, 60_000);

	it('private VMs on two hosts get DHCP leases from their own host\'s slice, shown in list --json', async () => {
		// VM a first: VM b's user-data needs a's address, to ping it from inside the guest.
		const started = performance.now();
		const a = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--host', 'host-a', '--network', 'private', '--memory', '128']);
		vms.a = a;
		const spawnMs = performance.now() - started;
		const leaseA = await waitForLease(join(hostA.stateDir, 'network', 'dnsmasq.leases'), a, 90_000);
		vms.a = {...a, ip: leaseA.ip};
		const userData = join(cloud.dir, 'ping-a.sh');
		await writeFile(
			userData,
			[
				'#!/bin/sh',
				'# From VM b on host B to VM a on host A, across the VXLAN tunnel; retried while ARP and the FDB settle.',
				'for try in 1 2 3 4 5; do',
				`	ping -c 3 -W 2 ${leaseA.ip} > /run/ping.out 2>&1 && break`,
				'	sleep 1',
				'done',
				'sed "s/^/GUEST-PING /" /run/ping.out',
				'# The MTU DHCP gave it (1450: VXLAN costs 50 bytes), and a ping bigger than one 1450-byte frame.',
				'echo "GUEST-MTU $(cat /sys/class/net/eth0/mtu)"',
				`ping -c 3 -W 2 -s 1440 ${leaseA.ip} 2>&1 | sed "s/^/GUEST-BIGPING /"`,
				'',
			].join('\n'),
		);
		const b = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--host', 'host-b', '--memory', '128', '--user-data', userData]);
		vms.b = b;
		for (const vm of [a, b]) {
			expect(vm).toMatchObject({state: 'running', network: 'private', ip: null});
			expect(isLocalUnicastMac(vm.mac!)).toBe(true);
			// QEMU runs through `ip netns exec`, which execs it in place: same pid, same name for discovery.
			expect(await pidByName(vm.id)).toBe(vm.pid);
		}

		expect(a.mac).not.toBe(b.mac);
		expect((await sh('ip', ['netns', 'identify', String(a.pid)])).trim()).toBe(netA);
		expect((await sh('ip', ['netns', 'identify', String(b.pid)])).trim()).toBe(netB);
		// Each VM's TAP is named after it, on its host's private bridge, in its host's namespace.
		expect(await links(netA)).toEqual(expect.arrayContaining(['kloud0', 'kloud0-vx', a.id]));
		expect(await links(netB)).toEqual(expect.arrayContaining(['kloud0', 'kloud0-vx', b.id]));
		expect(await links(netA)).not.toContain(b.id);

		const leaseB = await waitForLease(join(hostB.stateDir, 'network', 'dnsmasq.leases'), b, 90_000);
		vms.b = {...b, ip: leaseB.ip};
		figures.privateLeaseAfterStartReplyMs = `${Math.round(leaseA.leaseMs)} / ${Math.round(leaseB.leaseMs)} (a alone, then b while a runs)`;
		figures.privateIpInListAfterStartReplyMs = `${Math.round(leaseA.listMs)} / ${Math.round(leaseB.listMs)}`;
		figures.startReplyMs = String(Math.round(spawnMs));
		// Slot 0 hands out 10.77.0.2-31, slot 1 10.77.0.34-63: leases of different hosts never collide.
		expect(inRange(leaseA.ip, '10.77.0.2', '10.77.0.31'), leaseA.ip).toBe(true);
		expect(inRange(leaseB.ip, '10.77.0.34', '10.77.0.63'), leaseB.ip).toBe(true);
		// DHCP is fenced off the tunnel: each lease is in its own host's dnsmasq only.
		const leasesA = await readFile(join(hostA.stateDir, 'network', 'dnsmasq.leases'), 'utf8');
		const leasesB = await readFile(join(hostB.stateDir, 'network', 'dnsmasq.leases'), 'utf8');
		expect(leasesA).toContain(a.mac);
		expect(leasesA).not.toContain(b.mac);
		expect(leasesB).toContain(b.mac);
		expect(leasesB).not.toContain(a.mac);
		// The plain table shows them too, each on its VM's row.
		const table = (await cloud.cli(['list', '--timeout', '5'])).stdout;
		expect(table).toMatch(/^HOST\s+VM\s+IMAGE\s+STATE\s+IP\s/m);
		expect(table).toMatch(new RegExp(`^host-a\\s+${a.id}\\s+demo\\s+running\\s+${leaseA.ip.replaceAll('.', '\\.')}\\s`, 'm'));
		expect(table).toMatch(new RegExp(`^host-b\\s+${b.id}\\s+demo\\s+running\\s+${leaseB.ip.replaceAll('.', '\\.')}\\s`, 'm'));
		// The guests agree: their consoles print the address they configured.
		await waitFor(async () => (await consoleOf(hostA, a.id)).includes(`ip=${leaseA.ip}`), 60_000, 'the ready line on VM a\'s console');
		await waitFor(async () => (await consoleOf(hostB, b.id)).includes(`ip=${leaseB.ip}`), 60_000, 'the ready line on VM b\'s console');
	}, 180_000);

	it('VMs on different hosts reach each other over VXLAN (ping and HTTP across the tunnel)', async () => {
		const {a, b} = vms;
		expect(a?.ip && b?.ip).toBeTruthy();
		// Host B's namespace is on the shared private network by its gateway address (10.77.0.33): to
		// reach VM a it must cross the tunnel to host A, and the other way round.
		const pingAFromB = await lab.exec(netB, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', a!.ip!], {timeoutMs: 20_000});
		expect(pingAFromB).toMatch(/5 received/);
		const pingBFromA = await lab.exec(netA, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', b!.ip!], {timeoutMs: 20_000});
		expect(pingBFromA).toMatch(/5 received/);
		figures.pingRttAcrossVxlanMs = `B→VM a ${rtt(pingAFromB)}, A→VM b ${rtt(pingBFromA)} (min/avg/max/mdev)`;

		// Guest to guest: VM b's user-data pinged VM a (its address given in the user-data) at boot.
		await waitFor(async () => (await consoleOf(hostB, b!.id)).includes('KLOUD-USERDATA-DONE'), 60_000, 'VM b\'s user-data to end');
		const guestPing = await cloud.cli(['console', b!.id]);
		expect(guestPing.stdout).toContain(`GUEST-PING PING ${a!.ip} (${a!.ip})`);
		const received = Number(/GUEST-PING \d+ packets transmitted, (\d+) packets received/.exec(guestPing.stdout)?.[1] ?? 0);
		expect(received, guestPing.stdout).toBeGreaterThan(0);
		figures.guestToGuestPing = /GUEST-PING \d+ packets transmitted.*/.exec(guestPing.stdout)?.[0].trim() ?? '?';
		// Large frames too: DHCP's MTU option reached the guest, so 1468-byte packets cross the tunnel.
		expect(guestPing.stdout).toContain('GUEST-MTU 1450');
		const bigReceived = Number(/GUEST-BIGPING \d+ packets transmitted, (\d+) packets received/.exec(guestPing.stdout)?.[1] ?? 0);
		expect(bigReceived, guestPing.stdout).toBeGreaterThan(0);
		figures.guestToGuestBigPing = /GUEST-BIGPING \d+ packets transmitted.*/.exec(guestPing.stdout)?.[0].trim() ?? '?';

		const page = await lab.exec(netB, 'curl', ['-sS', '--max-time', '10', `http://${a!.ip}/`], {timeoutMs: 15_000});
		expect(page).toContain('A kloud demo guest');
		expect(page).toContain('<h1>');
		// Host A's bridge learned VM b's MAC behind the VXLAN port (it came through the tunnel).
		const fdb = JSON.parse(await sh('bridge', ['-n', netA, '-j', 'fdb', 'show', 'br', 'kloud0'])) as Array<{mac: string; ifname?: string}>;
		expect(fdb.find(entry => entry.mac === b!.mac)?.ifname).toBe('kloud0-vx');
		// And the tunnel's flood list names the peer, learned from its heartbeats.
		expect(await sh('bridge', ['-n', netA, 'fdb', 'show', 'dev', 'kloud0-vx'])).toContain(`dst ${UNDERLAY_B}`);
	}, 60_000);

	it('a public VM gets its address from the LAN\'s DHCP; the agent built the bridge over the uplink', async () => {
		const pub = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--host', 'host-a', '--network', 'public', '--memory', '128']);
		vms.pub = pub;
		expect(pub).toMatchObject({network: 'public', state: 'running'});
		// The uplink's address and default route moved to the bridge, as the tutorial's init_bridge does.
		expect(await sh('ip', ['-n', netA, '-4', '-o', 'addr', 'show', 'dev', 'br-lan'])).toContain(LAN_HOST_A);
		expect(await sh('ip', ['-n', netA, 'route', 'show', 'default'])).toContain(`via ${LAN_ROUTER} dev br-lan`);
		expect(await sh('ip', ['-n', netA, '-o', 'link', 'show', 'dev', pub.id])).toContain('master br-lan');

		// The LAN's DHCP server gives the address; the agent learns it from the DHCP answer it saw pass.
		const {ip, leaseMs, listMs} = await waitForLease(join(cloud.dir, 'lan.leases'), pub, 90_000);
		figures.publicLeaseAfterStartReplyMs = String(Math.round(leaseMs));
		figures.publicIpInListAfterStartReplyMs = String(Math.round(listMs));
		expect(inRange(ip, '10.99.0.100', '10.99.0.150'), ip).toBe(true);
		// The guest starts its web server just after it got the lease (CI13 asked 29 ms too soon).
		let page = '';
		await waitFor(async () => {
			page = await lab.exec(netLan, 'curl', ['-sS', '--max-time', '5', `http://${ip}/`], {timeoutMs: 10_000}).catch((error: unknown) => String(error));
			return page.includes('A kloud demo guest');
		}, 30_000, 'the public VM\'s web page').catch(() => {});
		expect(page).toContain('A kloud demo guest');
	}, 150_000);

	it('user mode: a virtio NIC on QEMU\'s own network, no TAP', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-b', '--network', 'user']);
		expect(vm).toMatchObject({network: 'user', ip: null});
		expect(isLocalUnicastMac(vm.mac!)).toBe(true);
		const cmdline = (await readFile(`/proc/${vm.pid}/cmdline`, 'utf8')).split('\0');
		// Isolated: slirp refuses the guest's connections, and QEMU runs in an unnamed namespace of its
		// own, not in host-b's (its dnsmasq) nor the agent's (the broker): guest-isolation.test.ts attacks it.
		expect(cmdline).toContain('user,id=net0,restrict=on');
		expect((await sh('ip', ['netns', 'identify', String(vm.pid)])).trim()).toBe('');
		expect(await readlink(`/proc/${vm.pid}/ns/net`)).not.toBe(await readlink('/proc/self/ns/net'));
		expect(await links(netB)).not.toContain(vm.id);
		await cloud.cliJson(['stop', vm.id, '--kill']);
	}, 30_000);

	it('kill removes the TAP', async () => {
		const pub = vms.pub!;
		expect(await links(netA)).toContain(pub.id);
		const killed = await cloud.cliJson<Vm>(['stop', pub.id, '--kill']);
		expect(killed).toMatchObject({state: 'stopped', exit: 'killed'});
		expect(await links(netA)).not.toContain(pub.id);
		vms.pub = undefined;
	}, 30_000);

	it('a crash: the VM is restarted by its policy on a TAP made anew; stopped, it has none', async () => {
		// The blank image: firmware only, no guest to boot, but a TAP like any private VM.
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-b', '--network', 'private']);
		expect(await links(netB)).toContain(vm.id);
		process.kill(vm.pid!, 'SIGKILL');
		await waitFor(async () => {
			const entry = (await list()).find(listed => listed.id === vm.id);
			return entry?.state === 'running' && entry.pid !== vm.pid;
		}, 15_000, 'the VM to be restarted');
		expect(await links(netB)).toContain(vm.id);
		await cloud.cliJson(['stop', vm.id, '--kill']);
		expect(await links(netB)).not.toContain(vm.id);
		expect((await list()).find(entry => entry.id === vm.id)).toMatchObject({state: 'stopped', ip: null});
	}, 30_000);

	it('an agent restart: running VMs keep TAP, lease and dnsmasq; a VM that died meanwhile is booted again on a TAP made anew', async () => {
		const a = vms.a!;
		const b = vms.b!;
		const dnsmasqPid = Number((await readFile(join(hostA.stateDir, 'network', 'dnsmasq.pid'), 'utf8')).trim());
		await hostA.stop('SIGKILL');
		await hostB.stop('SIGKILL');
		// VM b dies while its agent is down: its persistent TAP stays behind, unplugged.
		process.kill(b.pid!, 'SIGKILL');
		await waitFor(async () => (await pidByName(b.id)) === undefined, 5000, 'VM b to die');
		expect(await links(netB)).toContain(b.id);

		[hostA, hostB] = await Promise.all([cloud.startAgent('host-a', agentArgs.a()), cloud.startAgent('host-b', agentArgs.b())]);
		expect(hostA.logs()).toContain('adopted running VM');
		expect(hostB.logs()).toContain('deleted leftover TAPs');
		expect(await links(netA)).toContain(a.id);
		// The same dnsmasq serves on: it was started with the same settings.
		expect(Number((await readFile(join(hostA.stateDir, 'network', 'dnsmasq.pid'), 'utf8')).trim())).toBe(dnsmasqPid);

		// Under load a freshly restarted host can miss one list round: wait until both answer.
		let listed = await list();
		await waitFor(async () => {
			listed = await list();
			return listed.some(vm => vm.id === a.id) && listed.some(vm => vm.id === b.id);
		}, 15_000, 'both restarted hosts in the list');
		expect(listed.find(vm => vm.id === a.id)).toMatchObject({state: 'running', ip: a.ip, mac: a.mac});
		// b was meant to run: the restarted agent boots it again (same MAC, a TAP made anew).
		await waitFor(async () => (await list()).find(vm => vm.id === b.id)?.state === 'running', 30_000, 'VM b booted again');
		expect((await list()).find(vm => vm.id === b.id)).toMatchObject({state: 'running', mac: b.mac});
		expect(hostB.logs()).toContain('VM booted again after the agent started');
		expect(await links(netB)).toContain(b.id);

		const stopped = await cloud.cliJson<Vm>(['stop', a.id, '--grace', '5']);
		expect(stopped.state).toBe('stopped');
		expect(await links(netA)).not.toContain(a.id);
		// dhcp_release told dnsmasq the address is free: the lease is gone from its file.
		await waitFor(async () => !(await readFile(join(hostA.stateDir, 'network', 'dnsmasq.leases'), 'utf8')).includes(a.mac!), 5000, 'the lease to be released');
		await cloud.cliJson(['stop', b.id, '--kill']);
		vms.a = undefined;
		vms.b = undefined;
	}, 90_000);

	it('teardown leaves no TAP, bridge, dnsmasq, QEMU or namespace behind', async () => {
		expect((await links(netA)).filter(name => name.startsWith('vm-'))).toEqual([]);
		expect((await links(netB)).filter(name => name.startsWith('vm-'))).toEqual([]);
		await cloud.cleanup();
		await lab.cleanup();
		expect(await pidsMentioning(`${cloud.dir}/`)).toEqual([]);
		const namespaces = await listNamespaces();
		for (const name of [netA, netB, netLan]) {
			expect(namespaces).not.toContain(name);
		}

		// Nothing was ever made in the root namespace.
		const rootLinks = JSON.parse(await sh('ip', ['-j', 'link', 'show'])).map((link: {ifname: string}) => link.ifname) as string[];
		expect(rootLinks.filter(name => name.startsWith('vm-') || name.startsWith('kloud0') || name === 'br-lan' || name === 'ul0' || name === 'up0')).toEqual([]);
		expect(await stat(cloud.dir).catch(() => undefined)).toBeUndefined();
	}, 60_000);
});
