/**
 * Tenant networks, attacked from inside, as root, only inside network namespaces this test makes:
 * two "hosts" (namespaces joined by a veth underlay), an agent each with `--tenants --netns
 * --underlay`, running as a broker user of their own; two tenants made with the README's
 * permission recipe. Four demo guests boot (real QEMU, TCG):
 *
 * - victim  (alice, host A): listens on TCP 7000 and prints what arrives; asks for DHCP over and
 *   over while a rogue DHCP server runs next to it, printing which server answered;
 * - bob     (bob, host A): the other tenant, on the same host;
 * - mallory (alice, host A): tries bob's VM, the host's gateway address (a TCP port the test opens
 *   there), runs a DHCP server, and sends to the victim from a spoofed MAC, spoofed IPs and both;
 * - remote  (alice, host B): reaches the victim across the VXLAN tunnel, tries bob's VM.
 *
 * The claims are checked where a user would notice them (the guests' consoles) and on the wire
 * (nft counters the test puts on the victim's TAP, the bridge's forwarding table). VXLAN from an
 * underlay address that is no peer of the roster is sent by the test itself (a crafted packet).
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {readFile, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {AMQP_URL, CLI_BIN, createCloud, createTenant, pidByName, waitFor, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {createLab, listNamespaces, missingNetworkTools, sh, type Lab} from '../helpers/netns.js';

const run = promisify(execFile);

type Vm = {id: string; host: string; state: string; pid: number | null; ip: string | null; mac: string | null; network?: string; owner?: string | null};

const UNDERLAY_A = '192.0.2.1';
const UNDERLAY_B = '192.0.2.2';
/** An address on the underlay that no agent announces: VXLAN from it must not get in. */
const UNDERLAY_STRANGER = '192.0.2.66';
const SPOOFED_MAC = '02:66:66:66:66:66';
const GATEWAY_PORT = 7777;

const missing = await missingNetworkTools();
const figures: Record<string, string> = {};

let lab: Lab;
let cloud: Cloud;
let agentUser: {name: string; url: string} | undefined;
let alice: Tenant;
let bob: Tenant;
let hostA: AgentHandle;
let hostB: AgentHandle;
let netA = '';
let netB = '';
let gatewayServer: ChildProcess | undefined;
let dhcpRoundsBeforeRogue = 0;
let agentAArgs: string[] = [];
const vms: Record<'victim' | 'bob' | 'mallory' | 'remote', Vm | undefined> = {victim: undefined, bob: undefined, mallory: undefined, remote: undefined};

/** kloud-tui as a tenant (its own broker user). */
async function cliAs(tenant: Tenant, args: readonly string[]): Promise<any> {
	// Generous timeouts: four TCG guests boot on two shared cores.
	const extra = args[0] === 'start' || args[0] === 'stop' ? ['--timeout', '120'] : [];
	try {
		const {stdout} = await run(process.execPath, [CLI_BIN, ...args, ...extra, '--json', '--amqp', tenant.url, '--namespace', cloud.namespace], {timeout: 150_000});
		return JSON.parse(stdout);
	} catch (error) {
		throw new Error(`kloud-tui ${args.join(' ')} as ${tenant.name} failed: ${(error as {stderr?: string}).stderr ?? ''}`, {cause: error});
	}
}

async function list(): Promise<Vm[]> {
	return (await cloud.cliJson<{vms: Vm[]}>(['list', '--timeout', '5'])).vms;
}

async function consoleOf(agent: AgentHandle, id: string): Promise<string> {
	return readFile(join(agent.stateDir, id, 'console.log'), 'utf8').catch(() => '');
}

/** Waits for VM `vm`'s address in `list --json` (polled gently: the booting guests need the CPU). */
async function waitForIp(vm: Vm): Promise<string> {
	let ip: string | null = null;
	await waitFor(
		async () => {
			await new Promise(resolve => setTimeout(resolve, 500));
			ip = (await list()).find(entry => entry.id === vm.id)?.ip ?? null;
			return ip !== null;
		},
		150_000,
		`the IP of ${vm.id} in list --json`,
	);
	return ip!;
}

function received(text: string, marker: string): number | undefined {
	const match = new RegExp(`${marker} (\\d+) packets received`).exec(text);
	return match ? Number(match[1]) : undefined;
}

/** The victim's DHCP rounds: which server answered and with which address. */
function dhcpRounds(text: string): Array<{server?: string; ip?: string}> {
	return [...text.matchAll(/DHCP-ROUND server=(\S*) ip=(\S*)/g)].map(match => ({server: match[1], ip: match[2]}));
}

function subnet24(ip: string): string {
	return ip.split('.').slice(0, 3).join('.');
}

/** Packets counted by each rule of the test's own nft table on host A, in order. */
async function counters(): Promise<number[]> {
	const text = await sh('ip', ['netns', 'exec', netA, 'nft', 'list', 'table', 'bridge', 'kltest']);
	return [...text.matchAll(/counter packets (\d+)/g)].map(match => Number(match[1]));
}

/** Learned MACs on `bridge` in namespace `netns`, with the port each was learned on. */
async function fdb(netns: string, bridge: string): Promise<Array<{mac: string; ifname?: string}>> {
	return JSON.parse(await sh('bridge', ['-n', netns, '-j', 'fdb', 'show', 'br', bridge]));
}

async function linkInfo(netns: string, name: string): Promise<{master?: string; linkinfo?: {info_data?: {id?: number}}}> {
	return (JSON.parse(await sh('ip', ['-n', netns, '-d', '-j', 'link', 'show', 'dev', name])) as Array<{master?: string}>)[0]!;
}

/** A VXLAN packet (id `vni`) carrying a broadcast frame from `mac`, sent to host A from `source` inside host B's namespace. */
async function sendVxlan(vni: number, source: string, mac: string): Promise<void> {
	const script = [
		'import socket, struct, sys',
		'vni, source, mac = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3].replace(":", ""))',
		'frame = b"\\xff" * 6 + mac + b"\\x08\\x06" + bytes(46)',
		'packet = struct.pack("!II", 0x08000000, vni << 8) + frame',
		's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
		's.bind((source, 0))',
		'for _ in range(3): s.sendto(packet, (sys.argv[4], 4789))',
	].join('\n');
	await lab.exec(netB, 'python3', ['-c', script, String(vni), source, mac, UNDERLAY_A]);
}

describe.skipIf(missing.length > 0)('tenant networks: isolation and anti-spoofing under attack from inside', () => {
	beforeAll(async () => {
		lab = createLab();
		// The agents run as a broker user of their own, as the README's recipe has it.
		const name = `ka-${randomBytes(3).toString('hex')}`;
		const password = randomBytes(12).toString('hex');
		await run('rabbitmqctl', ['-q', 'add_user', name, password]);
		const url = new URL(AMQP_URL);
		url.username = name;
		url.password = password;
		agentUser = {name, url: url.toString()};
		await run('rabbitmqctl', ['-q', 'set_permissions', '-p', '/', name, '.*', '.*', '.*']);
		cloud = await createCloud('tnet', {amqpUrl: agentUser.url});
		await linkDemoImage(cloud.imagesDir);
		netA = await lab.addNamespace('a');
		netB = await lab.addNamespace('b');
		await lab.link({netns: netA, name: 'ul0', address: `${UNDERLAY_A}/24`}, {netns: netB, name: 'ul0', address: `${UNDERLAY_B}/24`});
		await sh('ip', ['-n', netB, 'addr', 'add', `${UNDERLAY_STRANGER}/24`, 'dev', 'ul0']);
		const common = ['--tenants', '--network-default', 'private'];
		agentAArgs = [...common, '--netns', netA, '--underlay', UNDERLAY_A, '--private-slot', '0'];
		[hostA, hostB] = await Promise.all([
			cloud.startAgent('host-a', agentAArgs),
			cloud.startAgent('host-b', [...common, '--netns', netB, '--underlay', UNDERLAY_B, '--private-slot', '1']),
		]);
		[alice, bob] = await Promise.all([createTenant(cloud.namespace, 'alice'), createTenant(cloud.namespace, 'bob')]);
		await waitFor(async () => (await cloud.cliJson<unknown[]>(['hosts'])).length === 2, 20_000, 'both hosts in the roster');
		// A TCP service on host A, on every address (the guests' gateway included): what a guest must not reach.
		gatewayServer = spawn('ip', ['netns', 'exec', netA, process.execPath, '-e', `require('node:net').createServer(socket => { console.log('CONNECTION'); socket.end('HOST-SECRET\\n'); }).listen(${GATEWAY_PORT}, () => console.log('LISTENING'))`], {stdio: ['ignore', 'pipe', 'inherit']});
		let served = '';
		gatewayServer.stdout!.on('data', (chunk: Buffer) => {
			served += chunk.toString();
			figures.gatewayConnections = String(served.split('\n').filter(line => line === 'CONNECTION').length);
		});
		figures.gatewayConnections = '0';
		await waitFor(() => served.includes('LISTENING'), 20_000, 'the test\'s TCP service on host A');
	}, 240_000);

	afterAll(async () => {
		gatewayServer?.kill('SIGKILL');
		await cloud?.cleanup();
		await lab?.cleanup();
		await Promise.all([alice?.remove(), bob?.remove()]);
		if (agentUser) {
			await run('rabbitmqctl', ['-q', 'delete_user', agentUser.name]).catch(() => {});
		}

		if (Object.keys(figures).length > 0) {
			console.log(`tenant network figures: ${JSON.stringify(figures)}`);
		}
	}, 60_000);

	it('each tenant\'s VMs get an L2 network of their own: own bridge, VXLAN id, subnet and DHCP', async () => {
		const victimData = join(cloud.dir, 'victim.sh');
		await writeFile(
			victimData,
			[
				'#!/bin/sh',
				'# Print everything that reaches TCP 7000.',
				'while :; do nc -l -p 7000 | sed "s/^/GOT /"; done &',
				'# Ask for DHCP again and again (without applying it), printing who answered.',
				'printf \'#!/bin/sh\\n[ "$1" = bound ] && echo "DHCP-ROUND server=$serverid ip=$ip router=$router"\\nexit 0\\n\' > /run/show',
				'chmod +x /run/show',
				'while :; do udhcpc -i eth0 -n -q -t 2 -T 1 -s /run/show 2>/dev/null; sleep 1; done',
				'',
			].join('\n'),
		);
		const [victim, bobVm] = await Promise.all([
			cliAs(alice, ['start', '--image', 'demo', '--host', 'host-a', '--memory', '128', '--user-data', victimData]) as Promise<Vm>,
			cliAs(bob, ['start', '--image', 'demo', '--host', 'host-a', '--memory', '128']) as Promise<Vm>,
		]);
		vms.victim = victim;
		vms.bob = bobVm;
		// The test's own counters on the victim's TAP: what mallory's attacks would deliver to it.
		await run('ip', ['netns', 'exec', netA, 'nft', 'add', 'table', 'bridge', 'kltest']);
		await run('ip', ['netns', 'exec', netA, 'nft', 'add', 'chain', 'bridge', 'kltest', 'forward', '{ type filter hook forward priority 100; policy accept; }']);
		for (const rule of [`oifname "${victim.id}" udp sport 67`, `oifname "${victim.id}" ether saddr ${SPOOFED_MAC}`, `oifname "${victim.id}" tcp dport 7000`]) {
			await run('ip', ['netns', 'exec', netA, 'nft', 'add', 'rule', 'bridge', 'kltest', 'forward', ...rule.split(' '), 'counter']);
		}

		const [victimIp, bobIp] = await Promise.all([waitForIp(victim), waitForIp(bobVm)]);
		vms.victim = {...victim, ip: victimIp};
		vms.bob = {...bobVm, ip: bobIp};
		expect(victim.owner).toBe(alice.name);
		expect(bobVm.owner).toBe(bob.name);
		// Two tenants on one host: two bridges, two subnets.
		const victimBridge = (await linkInfo(netA, victim.id)).master!;
		const bobBridge = (await linkInfo(netA, bobVm.id)).master!;
		expect(victimBridge).toMatch(/^kt[\da-f]{8}$/);
		expect(bobBridge).toMatch(/^kt[\da-f]{8}$/);
		expect(victimBridge).not.toBe(bobBridge);
		expect(subnet24(victimIp)).not.toBe(subnet24(bobIp));
		figures.addresses = `alice ${victimIp} on ${victimBridge}, bob ${bobIp} on ${bobBridge}`;
	}, 200_000);

	it('a tenant\'s VM cannot reach another tenant\'s, on the same host or across hosts; its own, yes (also over VXLAN)', async () => {
		const victim = vms.victim!;
		const bobVm = vms.bob!;
		// Fresh identities for mallory to take, in the victim's subnet (slice 7: nobody's lease).
		const spoofIp = `${subnet24(victim.ip!)}.250`;
		const spoofBoth = `${subnet24(victim.ip!)}.251`;
		const malloryData = join(cloud.dir, 'mallory.sh');
		await writeFile(
			malloryData,
			[
				'#!/bin/sh',
				`V=${victim.ip}; B=${bobVm.ip}`,
				'M=$(cat /run/kloud-ip); G=$(ip route | awk \'/^default/ {print $3; exit}\'); MAC=$(cat /sys/class/net/eth0/address)',
				'echo "MALLORY ip=$M gateway=$G mac=$MAC"',
				'# A rogue DHCP server next to the victim.',
				`printf 'start ${subnet24(victim.ip!)}.200\\nend ${subnet24(victim.ip!)}.220\\ninterface eth0\\nlease_file /run/udhcpd.leases\\nopt router %s\\nopt subnet 255.255.255.0\\n' "$M" > /run/udhcpd.conf`,
				'touch /run/udhcpd.leases',
				'udhcpd -f -a 0 /run/udhcpd.conf > /run/udhcpd.log 2>&1 &',
				'sleep 1',
				'echo "ROGUE-DHCP pid=$(pidof udhcpd)"',
				'# The other tenant, on this host.',
				'ping -c 3 -W 2 $B 2>&1 | sed -n "s/^\\([0-9]* packets transmitted\\)/CROSS-PING-BOB \\1/p"',
				'# Its own tenant, on this host.',
				'ping -c 3 -W 2 $V 2>&1 | sed -n "s/^\\([0-9]* packets transmitted\\)/SAME-PING-VICTIM \\1/p"',
				'# The host, on the gateway address: a TCP service (refused), DNS (answered).',
				`echo "GATEWAY-TCP [$(echo hello | nc -w 3 $G ${GATEWAY_PORT} 2> /dev/null)]"`,
				'nslookup localhost $G 2>&1 | grep -q "^Address: 127.0.0.1" && echo "GATEWAY-DNS answered" || echo "GATEWAY-DNS silent"',
				'restore() {',
				'	ip link set eth0 down; ip link set eth0 address $MAC; ip link set eth0 up',
				'	ip addr flush dev eth0; ip addr add $M/24 dev eth0; ip route add default via $G 2> /dev/null',
				'}',
				'for round in 1 2 3 4; do',
				'	# Someone else\'s MAC, its own address (announced, so the victim\'s ARP cache follows).',
				`	ip link set eth0 down; ip link set eth0 address ${SPOOFED_MAC}; ip link set eth0 up; ip route add default via $G 2> /dev/null`,
				'	arping -U -c 1 -I eth0 -s $M $M > /dev/null 2>&1',
				`	echo "SPOOF-MAC round $round" | nc -w 2 $V 7000 2> /dev/null`,
				'	restore',
				'	# Its own MAC, an address that is not its own.',
				`	ip addr flush dev eth0; ip addr add ${spoofIp}/24 dev eth0`,
				`	echo "SPOOF-IP round $round" | nc -w 2 $V 7000 2> /dev/null`,
				'	restore',
				'	# Both.',
				`	ip link set eth0 down; ip link set eth0 address ${SPOOFED_MAC}; ip link set eth0 up; ip addr flush dev eth0; ip addr add ${spoofBoth}/24 dev eth0`,
				`	echo "SPOOF-BOTH round $round" | nc -w 2 $V 7000 2> /dev/null`,
				'	restore',
				'	arping -U -c 1 -I eth0 -s $M $M > /dev/null 2>&1',
				'	echo "LEGIT round $round" | nc -w 3 $V 7000 2> /dev/null',
				'	sleep 1',
				'done',
				'echo "ROGUE-DHCP-AT-END pid=$(pidof udhcpd)"',
				'echo MALLORY-DONE',
				'',
			].join('\n'),
		);
		const remoteData = join(cloud.dir, 'remote.sh');
		await writeFile(
			remoteData,
			[
				'#!/bin/sh',
				`V=${victim.ip}; B=${bobVm.ip}`,
				'# Its own tenant on the other host, across the VXLAN tunnel (retried while ARP and the FDB settle).',
				'for try in 1 2 3 4 5; do ping -c 2 -W 2 $V > /run/same 2>&1 && break; sleep 1; done',
				'sed -n "s/^\\([0-9]* packets transmitted\\)/XHOST-SAME \\1/p" /run/same',
				'ping -c 3 -W 2 $B 2>&1 | sed -n "s/^\\([0-9]* packets transmitted\\)/XHOST-BOB \\1/p"',
				'',
			].join('\n'),
		);
		const [mallory, remote] = await Promise.all([
			cliAs(alice, ['start', '--image', 'demo', '--host', 'host-a', '--memory', '128', '--user-data', malloryData]) as Promise<Vm>,
			cliAs(alice, ['start', '--image', 'demo', '--host', 'host-b', '--memory', '128', '--user-data', remoteData]) as Promise<Vm>,
		]);
		vms.mallory = mallory;
		vms.remote = remote;
		const remoteBridge = (await linkInfo(netB, remote.id)).master!;
		const victimBridge = (await linkInfo(netA, victim.id)).master!;
		// The same tenant: the same bridge name, VXLAN id and subnet on both hosts; bob has nothing on host B.
		expect(remoteBridge).toBe(victimBridge);
		expect((await linkInfo(netB, `${remoteBridge}-vx`)).linkinfo?.info_data?.id).toBe((await linkInfo(netA, `${victimBridge}-vx`)).linkinfo?.info_data?.id);
		expect((JSON.parse(await sh('ip', ['-n', netB, '-j', 'link', 'show', 'type', 'bridge'])) as Array<{ifname: string}>).map(link => link.ifname)).toEqual([remoteBridge]);

		await waitFor(async () => (await consoleOf(hostB, remote.id)).includes('KLOUD-USERDATA-DONE'), 150_000, 'the remote VM\'s user-data to end');
		const remoteConsole = await consoleOf(hostB, remote.id);
		expect(received(remoteConsole, 'XHOST-SAME \\d+ packets transmitted,'), remoteConsole).toBeGreaterThan(0);
		expect.soft(received(remoteConsole, 'XHOST-BOB \\d+ packets transmitted,'), remoteConsole).toBe(0);
		figures.remoteVm = remoteConsole.split('\n').filter(line => line.startsWith('XHOST')).map(line => line.trim()).join('; ');

		await waitFor(async () => (await consoleOf(hostA, mallory.id)).includes('ROGUE-DHCP'), 150_000, 'mallory\'s DHCP server');
		dhcpRoundsBeforeRogue = dhcpRounds(await consoleOf(hostA, victim.id)).length;
		await waitFor(async () => (await consoleOf(hostA, mallory.id)).includes('GATEWAY-DNS'), 60_000, 'mallory\'s first attacks');
		const malloryConsole = await consoleOf(hostA, mallory.id);
		expect(malloryConsole).toMatch(/ROGUE-DHCP pid=\d+/);
		expect.soft(received(malloryConsole, 'CROSS-PING-BOB \\d+ packets transmitted,'), malloryConsole).toBe(0);
		expect(received(malloryConsole, 'SAME-PING-VICTIM \\d+ packets transmitted,'), malloryConsole).toBeGreaterThan(0);
		figures.mallory = malloryConsole.split('\n').filter(line => /^(CROSS|SAME|GATEWAY)/.test(line)).map(line => line.trim()).join('; ');
		// Bob's VM is up and answers (the host pings it), so "blocked" above is the isolation, not a dead VM.
		expect(await lab.exec(netA, 'ping', ['-c', '2', '-W', '2', bobVm.ip!], {timeoutMs: 15_000})).toMatch(/2 received/);
	}, 320_000);

	it('from a guest the host answers DHCP and DNS only: a TCP port on the gateway address is unreachable', async () => {
		const malloryConsole = await consoleOf(hostA, vms.mallory!.id);
		expect.soft(malloryConsole).toMatch(/GATEWAY-TCP \[\]/);
		expect.soft(malloryConsole).not.toContain('HOST-SECRET');
		expect.soft(figures.gatewayConnections).toBe('0');
		expect(malloryConsole).toContain('GATEWAY-DNS answered');
	});

	it('spoofed MACs and IPs and a rogue DHCP server reach nobody; the victim keeps its own lease', async () => {
		const {victim, mallory} = vms;
		// "LEGIT" goes last in every round: two of them in means a whole round of spoofs had its chance.
		await waitFor(async () => ((await consoleOf(hostA, victim!.id)).match(/GOT LEGIT/g) ?? []).length >= 2, 150_000, 'two legitimate messages at the victim');
		await waitFor(async () => (await consoleOf(hostA, mallory!.id)).includes('MALLORY-DONE'), 150_000, 'mallory to end');
		const victimConsole = await consoleOf(hostA, victim!.id);
		const got = victimConsole.split('\n').filter(line => line.startsWith('GOT ')).map(line => line.trim());
		figures.arrivedAtVictim = got.join('; ');
		expect.soft(got.filter(line => line.includes('SPOOF')), victimConsole).toEqual([]);
		// On the wire: nothing with the spoofed MAC or from a DHCP server was forwarded to the victim's TAP,
		// and the bridge never learned the spoofed MAC.
		const [dhcpServer, spoofedMac, toPort7000] = await counters();
		figures.forwardedToVictim = `DHCP-server frames ${dhcpServer}, spoofed-MAC frames ${spoofedMac}, TCP 7000 packets ${toPort7000}`;
		expect.soft(dhcpServer).toBe(0);
		expect.soft(spoofedMac).toBe(0);
		expect(toPort7000).toBeGreaterThan(0);
		const bridge = (await linkInfo(netA, victim!.id)).master!;
		expect.soft((await fdb(netA, bridge)).map(entry => entry.mac)).not.toContain(SPOOFED_MAC);
		// While the rogue server ran, every DHCP answer the victim got came from its gateway, with its own address.
		const rogueAt = (await consoleOf(hostA, mallory!.id)).indexOf('ROGUE-DHCP');
		expect(rogueAt).toBeGreaterThanOrEqual(0);
		// At least 5 rounds of DHCP while the rogue server ran (it was up before the round counted then).
		await waitFor(async () => dhcpRounds(await consoleOf(hostA, victim!.id)).length >= dhcpRoundsBeforeRogue + 5, 60_000, 'five DHCP rounds at the victim with the rogue server up');
		const rounds = dhcpRounds(await consoleOf(hostA, victim!.id));
		figures.victimDhcpRounds = `${rounds.length} rounds (${rounds.length - dhcpRoundsBeforeRogue} with the rogue server up), servers: ${[...new Set(rounds.map(round => round.server))].join(', ')}`;
		const gateway = /MALLORY ip=\S+ gateway=(\S+)/.exec(await consoleOf(hostA, mallory!.id))?.[1];
		expect.soft(rounds.every(round => round.server === gateway && round.ip === victim!.ip), JSON.stringify(rounds)).toBe(true);
	}, 320_000);

	it('VXLAN is accepted from the peers in the roster only', async () => {
		const bridge = (await linkInfo(netA, vms.victim!.id)).master!;
		const vni = (await linkInfo(netA, `${bridge}-vx`)).linkinfo?.info_data?.id;
		expect(vni).toBeGreaterThan(0);
		// The same crafted frame, first from an underlay address no agent announced, then from host B (a peer):
		// host A's bridge learns the MAC of the second only.
		await sendVxlan(vni!, UNDERLAY_STRANGER, '02:77:77:77:77:01');
		await sendVxlan(vni!, UNDERLAY_B, '02:77:77:77:77:02');
		await waitFor(async () => (await fdb(netA, bridge)).some(entry => entry.mac === '02:77:77:77:77:02'), 10_000, 'the peer\'s frame to be learned');
		expect((await fdb(netA, bridge)).map(entry => entry.mac)).not.toContain('02:77:77:77:77:01');
	}, 60_000);

	it('an agent restart keeps a tenant\'s network and guard; a tenant\'s VM that died meanwhile is booted again on its own network; a network whose last VM is gone is removed', async () => {
		const {victim, mallory} = vms;
		const bobVm = vms.bob!;
		const bobBridge = (await linkInfo(netA, bobVm.id)).master!;
		const aliceBridge = (await linkInfo(netA, victim!.id)).master!;
		await hostA.stop('SIGKILL');
		process.kill(bobVm.pid!, 'SIGKILL');
		await waitFor(async () => (await pidByName(bobVm.id)) === undefined, 10_000, 'bob\'s VM to die');
		hostA = await cloud.startAgent('host-a', agentAArgs);
		// Bob's VM was meant to run: booted again, on his own network again, guarded again.
		let again: {id: string; state: string; pid: number | null} | undefined;
		await waitFor(async () => {
			again = (await cliAs(bob, ['list'])).vms.find((vm: {id: string}) => vm.id === bobVm.id);
			return again?.state === 'running';
		}, 60_000, 'bob\'s VM booted again');
		expect((await linkInfo(netA, bobVm.id)).master).toBe(bobBridge);
		expect(await sh('ip', ['netns', 'exec', netA, 'nft', 'list', 'table', 'bridge', 'kloudg_kloud0'])).toContain(`chain ${bobVm.id} {`);
		// Now his VM dies and its directory goes while the agent is down: his network goes at start-up.
		await hostA.stop('SIGKILL');
		process.kill(again!.pid!, 'SIGKILL');
		await waitFor(async () => (await pidByName(bobVm.id)) === undefined, 10_000, 'bob\'s VM to die again');
		await rm(join(hostA.stateDir, bobVm.id), {recursive: true, force: true});
		hostA = await cloud.startAgent('host-a', agentAArgs);
		const names = (JSON.parse(await sh('ip', ['-n', netA, '-j', 'link', 'show'])) as Array<{ifname: string}>).map(link => link.ifname);
		expect(names.filter(name => name.startsWith(bobBridge))).toEqual([]);
		expect(names).toEqual(expect.arrayContaining([aliceBridge, `${aliceBridge}-vx`, victim!.id, mallory!.id]));
		const tables = await sh('ip', ['netns', 'exec', netA, 'nft', 'list', 'tables']);
		expect(tables).not.toContain(`kloud_${bobBridge}`);
		expect(tables).toContain(`kloud_${aliceBridge}`);
		// The guard is back for alice's running VMs, with their reserved addresses.
		const guard = await sh('ip', ['netns', 'exec', netA, 'nft', 'list', 'table', 'bridge', 'kloudg_kloud0']);
		expect(guard).toContain(`ip saddr != { 0.0.0.0, ${victim!.ip} } drop`);
		expect(guard).toContain(`chain ${mallory!.id} {`);
		expect(guard).not.toContain(`chain ${bobVm.id} {`);
	}, 180_000);

	it('a tenant network goes with its last VM; teardown leaves nothing behind', async () => {
		const aliceBridge = (await linkInfo(netB, vms.remote!.id)).master!;
		await cliAs(alice, ['stop', vms.remote!.id, '--kill']);
		await waitFor(async () => !(JSON.parse(await sh('ip', ['-n', netB, '-j', 'link', 'show'])) as Array<{ifname: string}>).some(link => link.ifname.startsWith(aliceBridge)), 10_000, 'alice\'s bridge on host B to go');
		expect(await sh('ip', ['netns', 'exec', netB, 'nft', 'list', 'tables'])).not.toContain(`kloud_${aliceBridge}`);
		// On host A alice's stays: she still has VMs there.
		expect(await sh('ip', ['netns', 'exec', netA, 'nft', 'list', 'tables'])).toContain(`kloud_${aliceBridge}`);
		await cloud.cleanup();
		await lab.cleanup();
		const namespaces = await listNamespaces();
		expect(namespaces).not.toContain(netA);
		expect(namespaces).not.toContain(netB);
		const rootLinks = JSON.parse(await sh('ip', ['-j', 'link', 'show'])).map((link: {ifname: string}) => link.ifname) as string[];
		expect(rootLinks.filter(name => name.startsWith('vm-') || /^kt[\da-f]{8}/.test(name))).toEqual([]);
	}, 60_000);
});
