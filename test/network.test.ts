import {describe, expect, it} from 'vitest';
import {
	dnsmasqArgs,
	dnsmasqCommand,
	fdbCommands,
	isLocalUnicastMac,
	leasesByMac,
	newMac,
	NetworkConfigError,
	ownedTaps,
	parseAddresses,
	parseCidr,
	parseFloodPeers,
	parseLeases,
	withLease,
	parseLinks,
	parseNeighbours,
	parseRoutes,
	parseSnoopedLeases,
	privateBridgeCommands,
	privateLayout,
	privateNetworkPaths,
	privateNftRuleset,
	publicBridgeCommands,
	publicSnoopRuleset,
	randomMac,
	tapCreateCommands,
	tapOwnerMark,
	type HostCommand,
	type PrivateNetworkSpec,
} from '../agent/network.js';

/** Commands as the shell lines an operator would type (for readable expectations only: nothing runs a shell). */
const lines = (commands: readonly HostCommand[]): string[] => commands.map(command => [command.command, ...command.args].join(' '));

const bytes = (...values: number[]) => () => Uint8Array.from(values);

describe('MAC addresses', () => {
	it.each([
		['all zero bits', [0, 0, 0, 0, 0, 0], '02:00:00:00:00:00'],
		['all one bits: multicast bit cleared, local bit set', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 'fe:ff:ff:ff:ff:ff'],
		['a vendor unicast first octet (0x52) stays local', [0x52, 0x54, 0, 0x12, 0x34, 0x56], '52:54:00:12:34:56'],
		['a multicast first octet (0x01)', [0x01, 1, 2, 3, 4, 5], '02:01:02:03:04:05'],
		['0x2d', [0x2d, 0xab, 0xcd, 0xef, 0x01, 0x23], '2e:ab:cd:ef:01:23'],
	])('randomMac from %s', (_name, random, mac) => {
		expect(randomMac(bytes(...random))).toBe(mac);
		expect(isLocalUnicastMac(mac)).toBe(true);
	});

	it('10 000 random MACs are all locally administered, unicast and different', () => {
		const seen = new Set<string>();
		for (let index = 0; index < 10_000; index++) {
			const mac = newMac(seen);
			expect(isLocalUnicastMac(mac), mac).toBe(true);
			seen.add(mac);
		}

		expect(seen.size).toBe(10_000);
	});

	it('newMac draws again when the MAC is taken', () => {
		const draws = [
			[0x02, 0, 0, 0, 0, 1],
			[0x02, 0, 0, 0, 0, 1],
			[0x02, 0, 0, 0, 0, 2],
		];
		const random = () => Uint8Array.from(draws.shift()!);
		expect(newMac(new Set(['02:00:00:00:00:01']), random)).toBe('02:00:00:00:00:02');
		expect(draws).toHaveLength(0);
	});

	it.each([
		['02:00:00:00:00:00', true],
		['fe:ff:ff:ff:ff:ff', true],
		['52:54:00:12:34:56', true],
		['00:16:3e:00:00:01', false], // a vendor's (universally administered)
		['03:00:00:00:00:00', false], // multicast
		['ff:ff:ff:ff:ff:ff', false], // broadcast
		['02:00:00:00:00', false],
		['02:00:00:00:00:0G', false],
		['02:AA:00:00:00:00', false], // uppercase: not the canonical form
	])('isLocalUnicastMac(%s) is %s', (mac, expected) => {
		expect(isLocalUnicastMac(mac)).toBe(expected);
	});
});

describe('private subnet layout', () => {
	it.each([
		['10.77.0.0/24', 0, {gateway: '10.77.0.1', dhcpStart: '10.77.0.2', dhcpEnd: '10.77.0.31', netmask: '255.255.255.0', prefix: 24}],
		['10.77.0.0/24', 1, {gateway: '10.77.0.33', dhcpStart: '10.77.0.34', dhcpEnd: '10.77.0.63'}],
		['10.77.0.0/24', 7, {gateway: '10.77.0.225', dhcpStart: '10.77.0.226', dhcpEnd: '10.77.0.254'}],
		['10.77.0.0/16', 3, {gateway: '10.77.96.1', dhcpStart: '10.77.96.2', dhcpEnd: '10.77.127.255', netmask: '255.255.0.0'}],
		['192.168.128.0/25', 2, {gateway: '192.168.128.33', dhcpStart: '192.168.128.34', dhcpEnd: '192.168.128.47', netmask: '255.255.255.128'}],
	])('%s, slot %i', (subnet, slot, expected) => {
		expect(privateLayout(subnet, slot)).toMatchObject({...expected, slot, subnet});
	});

	it('slices of different slots never overlap and never hold another slot\'s gateway', () => {
		const taken = new Map<string, number>();
		for (let slot = 0; slot < 8; slot++) {
			const layout = privateLayout('10.77.0.0/24', slot);
			const first = Number(layout.gateway.split('.')[3]);
			const last = Number(layout.dhcpEnd.split('.')[3]);
			for (let host = first; host <= last; host++) {
				expect(taken.get(`10.77.0.${host}`), `10.77.0.${host}`).toBeUndefined();
				taken.set(`10.77.0.${host}`, slot);
			}
		}

		expect(taken.has('10.77.0.0')).toBe(false);
		expect(taken.has('10.77.0.255')).toBe(false);
	});

	it.each([
		['10.77.0.5/24', 0, /host bits set \(did you mean 10\.77\.0\.0\/24\?\)/],
		['10.77.0.0', 0, /expected an IPv4 CIDR/],
		['10.77.0.0/33', 0, /expected an IPv4 CIDR/],
		['10.77.0.256/24', 0, /expected an IPv4 CIDR/],
		['10.77.0.0/26', 0, /too small to split among 8 hosts: use a \/25 or larger/],
		['10.77.0.0/24', 8, /invalid private slot 8: expected 0 to 7/],
		['10.77.0.0/24', -1, /invalid private slot/],
	])('refuses %s slot %i', (subnet, slot, message) => {
		expect(() => privateLayout(subnet, slot)).toThrow(NetworkConfigError);
		expect(() => privateLayout(subnet, slot)).toThrow(message);
	});

	it('parseCidr reads network and prefix', () => {
		expect(parseCidr('0.0.0.0/0')).toEqual({network: 0, prefix: 0});
		expect(parseCidr('255.255.255.255/32')).toEqual({network: 2 ** 32 - 1, prefix: 32});
	});
});

const owner = tapOwnerMark('/var/lib/kloud/state');
const spec = (overrides: Partial<PrivateNetworkSpec> = {}): PrivateNetworkSpec => ({
	bridge: 'kloud0',
	layout: privateLayout('10.77.0.0/24', 1),
	owner,
	paths: privateNetworkPaths('/var/lib/kloud/state'),
	...overrides,
});

describe('command builders', () => {
	it('a TAP: persistent, marked as ours, on the bridge, up; inside the namespace when given', () => {
		expect(lines(tapCreateCommands({tap: 'vm-abcdefgh', bridge: 'kloud0', owner}))).toEqual([
			'ip tuntap add dev vm-abcdefgh mode tap',
			'ip link set dev vm-abcdefgh alias kloud /var/lib/kloud/state',
			'ip link set dev vm-abcdefgh master kloud0',
			'ip link set dev vm-abcdefgh up',
		]);
		expect(lines(tapCreateCommands({tap: 'vm-abcdefgh', bridge: 'kloud0', owner, mtu: 1450, netns: 'host-a'}))).toEqual([
			'ip -n host-a tuntap add dev vm-abcdefgh mode tap',
			'ip -n host-a link set dev vm-abcdefgh alias kloud /var/lib/kloud/state',
			'ip -n host-a link set dev vm-abcdefgh mtu 1450',
			'ip -n host-a link set dev vm-abcdefgh master kloud0',
			'ip -n host-a link set dev vm-abcdefgh up',
		]);
		// The alias is one argument, spaces and all: no shell ever splits it.
		expect(tapCreateCommands({tap: 'vm-abcdefgh', bridge: 'kloud0', owner})[1]?.args.at(-1)).toBe('kloud /var/lib/kloud/state');
	});

	it.each([
		['a TAP not named after a VM', {tap: 'eth0', bridge: 'kloud0'}],
		['a bridge name over 15 characters', {tap: 'vm-abcdefgh', bridge: 'a-very-long-bridge'}],
		['a bridge name with a slash', {tap: 'vm-abcdefgh', bridge: '../x'}],
	])('refuses %s', (_name, input) => {
		expect(() => tapCreateCommands({...input, owner})).toThrow(NetworkConfigError);
	});

	it('a long state dir gives a hashed owner mark that still fits the kernel\'s alias', () => {
		const mark = tapOwnerMark(`/${'x'.repeat(300)}`);
		expect(mark).toMatch(/^kloud sha256:[\da-f]{64}$/);
		expect(tapOwnerMark('/a')).not.toBe(tapOwnerMark('/b'));
	});

	it('the private bridge on a fresh host, with VXLAN, in a namespace', () => {
		expect(lines(privateBridgeCommands(spec({underlay: '192.0.2.1', netns: 'host-a'}), {bridgeAddresses: []}))).toEqual([
			'ip -n host-a link add name kloud0 type bridge',
			'ip -n host-a link set dev kloud0 alias kloud /var/lib/kloud/state',
			'ip -n host-a addr add 10.77.0.33/24 dev kloud0',
			'ip -n host-a link set dev kloud0 up',
			'ip -n host-a link add name kloud0-vx type vxlan id 7700 local 192.0.2.1 dstport 4789',
			'ip -n host-a link set dev kloud0-vx master kloud0',
			'ip -n host-a link set dev kloud0-vx up',
		]);
	});

	it('the private bridge after an agent restart: nothing recreated', () => {
		const bridge = {name: 'kloud0', kind: 'bridge', alias: owner};
		expect(lines(privateBridgeCommands(spec(), {bridge, bridgeAddresses: ['10.77.0.33/24']}))).toEqual(['ip link set dev kloud0 up']);
		const vxlan = {name: 'kloud0-vx', kind: 'vxlan', vxlanId: 7700, local: '192.0.2.1'};
		expect(lines(privateBridgeCommands(spec({underlay: '192.0.2.1'}), {bridge, bridgeAddresses: ['10.77.0.33/24'], vxlan}))).toEqual([
			'ip link set dev kloud0 up',
			'ip link set dev kloud0-vx master kloud0',
			'ip link set dev kloud0-vx up',
		]);
	});

	it('the private bridge after a change of slot, underlay or VXLAN id: fixed in place', () => {
		const bridge = {name: 'kloud0', kind: 'bridge', alias: owner};
		const vxlan = {name: 'kloud0-vx', kind: 'vxlan', vxlanId: 42, local: '192.0.2.1'};
		expect(lines(privateBridgeCommands(spec({underlay: '192.0.2.9'}), {bridge, bridgeAddresses: ['10.77.0.1/24'], vxlan}))).toEqual([
			'ip addr del 10.77.0.1/24 dev kloud0',
			'ip addr add 10.77.0.33/24 dev kloud0',
			'ip link set dev kloud0 up',
			'ip link del dev kloud0-vx',
			'ip link add name kloud0-vx type vxlan id 7700 local 192.0.2.9 dstport 4789',
			'ip link set dev kloud0-vx master kloud0',
			'ip link set dev kloud0-vx up',
		]);
		// VXLAN switched off: its device goes.
		expect(lines(privateBridgeCommands(spec(), {bridge, bridgeAddresses: ['10.77.0.33/24'], vxlan}))).toEqual(['ip link set dev kloud0 up', 'ip link del dev kloud0-vx']);
	});

	it.each([
		['a bridge of another agent', {name: 'kloud0', kind: 'bridge', alias: 'kloud /srv/other'}, /belongs to "kloud \/srv\/other"/],
		['an operator\'s bridge', {name: 'kloud0', kind: 'bridge'}, /belongs to someone else/],
		['an interface that is no bridge', {name: 'kloud0', kind: 'veth', alias: owner}, /is a veth interface, not a bridge/],
	])('never takes over %s', (_name, bridge, message) => {
		expect(() => privateBridgeCommands(spec(), {bridge, bridgeAddresses: []})).toThrow(message);
	});

	it('dnsmasq: this host\'s slice only, reserved addresses only, quick and authoritative, state in the state dir', () => {
		expect(dnsmasqArgs(spec())).toEqual([
			'--conf-file=/dev/null',
			'--bind-interfaces',
			'--interface=kloud0',
			'--except-interface=lo',
			'--pid-file=/var/lib/kloud/state/network/dnsmasq.pid',
			'--dhcp-leasefile=/var/lib/kloud/state/network/dnsmasq.leases',
			'--log-facility=/var/lib/kloud/state/network/dnsmasq.log',
			'--log-dhcp',
			'--dhcp-range=10.77.0.34,static,255.255.255.0,12h',
			'--dhcp-authoritative',
			'--no-ping',
		]);
		expect(dnsmasqArgs(spec({underlay: '192.0.2.1'})).at(-1)).toBe('--dhcp-option=option:mtu,1450');
		// One --dhcp-host per reserved address, in a stable order (a restarted agent compares command lines).
		expect(dnsmasqArgs(spec(), [{mac: '02:00:00:00:00:09', ip: '10.77.0.35'}, {mac: '02:00:00:00:00:01', ip: '10.77.0.34'}]).slice(8, 11)).toEqual([
			'--dhcp-range=10.77.0.34,static,255.255.255.0,12h',
			'--dhcp-host=02:00:00:00:00:01,10.77.0.34',
			'--dhcp-host=02:00:00:00:00:09,10.77.0.35',
		]);
		expect(dnsmasqCommand(spec({netns: 'host-b'}))).toMatchObject({command: 'ip', args: ['netns', 'exec', 'host-b', 'dnsmasq', '--conf-file=/dev/null', ...dnsmasqArgs(spec()).slice(1)]});
	});

	it('nft: masquerade out of the subnet; with VXLAN, DHCP fenced off the tunnel', () => {
		const plain = privateNftRuleset({bridge: 'kloud0', subnet: '10.77.0.0/24', hasVxlan: false});
		expect(plain).toContain('ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 masquerade');
		expect(plain).toMatch(/^table ip kloud_kloud0 \{\}\ndelete table ip kloud_kloud0\n/);
		expect(plain).not.toContain('udp dport');
		const fenced = privateNftRuleset({bridge: 'kloud0', subnet: '10.77.0.0/24', hasVxlan: true});
		expect(fenced.match(/oifname "kloud0-vx" udp dport \{ 67, 68 \} drop/g)).toHaveLength(2);
		expect(fenced.match(/iifname "kloud0-vx" udp dport \{ 67, 68 \} drop/g)).toHaveLength(2);
		expect(fenced).toContain('type filter hook input priority filter');
	});

	it('nft: the public bridge\'s snooping reads chaddr and yiaddr from DHCP answers to VM TAPs', () => {
		expect(publicSnoopRuleset('br-lan')).toContain('oifname "vm-*" udp sport 67 udp dport 68 @th,192,32 != 0 update @leases { @th,288,48 . @th,192,32 }');
		expect(publicSnoopRuleset('br-lan')).toMatch(/^table bridge kloud_br_lan \{/);
	});

	it('VXLAN flood entries follow the live peers', () => {
		expect(lines(fdbCommands({bridge: 'kloud0', wanted: ['192.0.2.2', '192.0.2.3'], present: ['192.0.2.3', '192.0.2.9'], netns: 'host-a'}))).toEqual([
			'bridge -n host-a fdb del 00:00:00:00:00:00 dev kloud0-vx dst 192.0.2.9',
			'bridge -n host-a fdb append 00:00:00:00:00:00 dev kloud0-vx dst 192.0.2.2',
		]);
		expect(fdbCommands({bridge: 'kloud0', wanted: ['192.0.2.2'], present: ['192.0.2.2']})).toEqual([]);
	});

	it('public bridge: an existing one is used as it is', () => {
		expect(publicBridgeCommands({bridge: 'br0', uplink: 'eth0'}, {bridge: {name: 'br0', kind: 'bridge'}, uplinkAddresses: [], uplinkRoutes: []})).toEqual([]);
	});

	it('public bridge: built over the uplink, addresses and gateway moved (the tutorial\'s init_bridge)', () => {
		const observed = {
			uplink: {name: 'up0', kind: 'veth', address: '02:11:22:33:44:55'},
			uplinkAddresses: ['10.99.0.2/24'],
			uplinkRoutes: [{dst: 'default', gateway: '10.99.0.1', metric: 5}, {dst: '10.99.0.0/24'}],
		};
		expect(lines(publicBridgeCommands({bridge: 'br-lan', uplink: 'up0', netns: 'host-a'}, observed))).toEqual([
			'ip -n host-a link add name br-lan type bridge',
			'ip -n host-a link set dev br-lan address 02:11:22:33:44:55',
			'ip -n host-a link set dev br-lan up',
			'ip -n host-a link set dev up0 master br-lan',
			'ip -n host-a link set dev up0 up',
			'ip -n host-a addr del 10.99.0.2/24 dev up0',
			'ip -n host-a addr add 10.99.0.2/24 dev br-lan',
			'ip -n host-a route replace default via 10.99.0.1 dev br-lan metric 5',
		]);
	});

	it.each([
		['no bridge and no uplink', {bridge: 'br0'}, {uplinkAddresses: [], uplinkRoutes: []}, /does not exist: create it, or give --uplink/],
		['a missing uplink', {bridge: 'br0', uplink: 'eth9'}, {uplinkAddresses: [], uplinkRoutes: []}, /the uplink eth9 does not exist/],
		['an uplink in another bridge', {bridge: 'br0', uplink: 'eth0'}, {uplink: {name: 'eth0', master: 'virbr0'}, uplinkAddresses: [], uplinkRoutes: []}, /already enslaved to virbr0/],
		['a "bridge" that is not one', {bridge: 'eth0'}, {bridge: {name: 'eth0', kind: 'veth'}, uplinkAddresses: [], uplinkRoutes: []}, /not a bridge/],
	])('public bridge: refuses %s', (_name, input, observed, message) => {
		expect(() => publicBridgeCommands(input, observed)).toThrow(message);
	});
});

describe('parsers', () => {
	it('parseLinks and ownedTaps: only our marked vm-* TAPs', () => {
		const json = JSON.stringify([
			{ifname: 'vm-abcdefgh', ifalias: owner, master: 'kloud0', address: 'b2:62:74:94:11:b5', linkinfo: {info_kind: 'tun', info_data: {type: 'tap', persist: true}}},
			{ifname: 'vm-zzzzzzzz', ifalias: 'kloud /srv/other', linkinfo: {info_kind: 'tun'}},
			{ifname: 'vm-yyyyyyyy', linkinfo: {info_kind: 'tun'}},
			{ifname: 'tap0', ifalias: owner, linkinfo: {info_kind: 'tun'}},
			{ifname: 'kloud0-vx', master: 'kloud0', linkinfo: {info_kind: 'vxlan', info_data: {id: 7700, local: '192.0.2.1', port: 4789}}},
		]);
		const links = parseLinks(json);
		expect(links[0]).toEqual({name: 'vm-abcdefgh', kind: 'tun', alias: owner, master: 'kloud0', address: 'b2:62:74:94:11:b5'});
		expect(links[4]).toEqual({name: 'kloud0-vx', kind: 'vxlan', master: 'kloud0', vxlanId: 7700, local: '192.0.2.1'});
		expect(ownedTaps(links, owner)).toEqual(['vm-abcdefgh']);
		expect(parseLinks('')).toEqual([]);
		expect(parseLinks('not json')).toEqual([]);
	});

	it('parseAddresses, parseRoutes, parseNeighbours, parseFloodPeers (real `ip -j` / `bridge -j` output)', () => {
		expect(
			parseAddresses(
				'[{"ifindex":2,"ifname":"br0","addr_info":[{"family":"inet","local":"10.77.0.1","prefixlen":24,"scope":"global","label":"br0"},{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]}]',
			),
		).toEqual(['10.77.0.1/24']);
		expect(parseRoutes('[{"dst":"default","gateway":"192.0.2.254","metric":5,"flags":[]},{"dst":"192.0.2.0/24","protocol":"kernel","scope":"link","prefsrc":"192.0.2.1","flags":[]}]')).toEqual([
			{dst: 'default', gateway: '192.0.2.254', metric: 5},
			{dst: '192.0.2.0/24'},
		]);
		expect(
			parseNeighbours(
				'[{"dst":"192.0.2.7","lladdr":"52:54:00:12:34:56","state":["REACHABLE"]},{"dst":"192.0.2.8","lladdr":"52:54:00:AA:BB:CC","state":["STALE"]},{"dst":"192.0.2.9","state":["FAILED"]}]',
			),
		).toEqual(
			new Map([
				['52:54:00:12:34:56', '192.0.2.7'],
				['52:54:00:aa:bb:cc', '192.0.2.8'],
			]),
		);
		expect(
			parseFloodPeers('[{"mac":"ba:44:35:c2:4b:c2","flags":[],"master":"br0","state":"permanent"},{"mac":"00:00:00:00:00:00","dst":"192.0.2.2","flags":["self"],"state":"permanent"}]'),
		).toEqual(['192.0.2.2']);
	});

	it('parseLeases and leasesByMac: a dnsmasq leases file', () => {
		const text = [
			'1795500000 02:aa:bb:cc:dd:01 10.77.0.34 vm-one 01:02:aa:bb:cc:dd:01',
			'1795500100 02:AA:BB:CC:DD:02 10.77.0.35 * *',
			'0 02:aa:bb:cc:dd:03 10.77.0.36 * *',
			'1795400000 02:aa:bb:cc:dd:01 10.77.0.40 vm-one *',
			'garbage line',
			'duid 00:01:00:01:2c:aa:bb:cc',
			'',
		].join('\n');
		expect(parseLeases(text)).toHaveLength(4);
		expect(leasesByMac(parseLeases(text))).toEqual(
			new Map([
				['02:aa:bb:cc:dd:01', '10.77.0.34'],
				['02:aa:bb:cc:dd:02', '10.77.0.35'],
				['02:aa:bb:cc:dd:03', '10.77.0.36'],
			]),
		);
	});

	it('parseLeases keeps the client id; withLease puts a migrated VM\'s lease in, replacing any for its MAC or address', () => {
		const text = ['1795500000 02:aa:bb:cc:dd:01 10.77.0.34 vm-one 01:02:aa:bb:cc:dd:01', '1795500100 02:aa:bb:cc:dd:02 10.77.0.35 * *', '1795400000 02:aa:bb:cc:dd:09 10.77.0.40 * *', 'duid 00:01:00:01:2c:aa:bb:cc', ''].join('\n');
		expect(parseLeases(text)[0]).toEqual({mac: '02:aa:bb:cc:dd:01', ip: '10.77.0.34', expires: 1_795_500_000, clientId: '01:02:aa:bb:cc:dd:01'});
		expect(parseLeases(text)[1]).toEqual({mac: '02:aa:bb:cc:dd:02', ip: '10.77.0.35', expires: 1_795_500_100});
		const moved = withLease(text, {mac: '02:aa:bb:cc:dd:09', ip: '10.77.0.35', expires: 1_795_600_000, clientId: '01:02:aa:bb:cc:dd:09'});
		expect(moved.split('\n')).toEqual(['1795500000 02:aa:bb:cc:dd:01 10.77.0.34 vm-one 01:02:aa:bb:cc:dd:01', 'duid 00:01:00:01:2c:aa:bb:cc', '1795600000 02:aa:bb:cc:dd:09 10.77.0.35 * 01:02:aa:bb:cc:dd:09', '']);
		expect(leasesByMac(parseLeases(moved)).get('02:aa:bb:cc:dd:09')).toBe('10.77.0.35');
		expect(withLease('', {mac: '02:aa:bb:cc:dd:09', ip: '10.77.0.35', expires: 0})).toBe('0 02:aa:bb:cc:dd:09 10.77.0.35 * *\n');
	});

	it('parseSnoopedLeases: nft -j list set (integers for chaddr . yiaddr)', () => {
		const json = JSON.stringify({
			nftables: [
				{metainfo: {version: '1.0.6'}},
				{
					set: {
						family: 'bridge',
						name: 'leases',
						table: 'kloud_br_lan',
						type: ['integer', 'integer'],
						elem: [
							{elem: {val: {concat: [0x02_11_22_33_44_55, 0x0a_63_00_05]}, timeout: 86_400, expires: 86_390}},
							{elem: {val: {concat: ['0x021122334466', 0x0a_63_00_06]}, timeout: 86_400, expires: 100}},
							{concat: [0x02_11_22_33_44_77, 0x0a_63_00_07]},
							{elem: {val: {concat: [0x02_11_22_33_44_55, 0x0a_63_00_09]}, timeout: 86_400, expires: 50}},
						],
					},
				},
			],
		});
		const leases = parseSnoopedLeases(json);
		expect(leases).toContainEqual({mac: '02:11:22:33:44:55', ip: '10.99.0.5', expires: 86_390});
		expect(leases).toContainEqual({mac: '02:11:22:33:44:66', ip: '10.99.0.6', expires: 100});
		expect(leasesByMac(leases).get('02:11:22:33:44:55')).toBe('10.99.0.5');
		expect(leasesByMac(leases).get('02:11:22:33:44:77')).toBe('10.99.0.7');
		expect(parseSnoopedLeases('{"nftables":[]}')).toEqual([]);
		expect(parseSnoopedLeases('')).toEqual([]);
	});
});
