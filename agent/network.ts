/**
 * VM networking as data: every `ip`, `bridge`, `nft`, `dnsmasq`, `dhcp_release` and `sysctl`
 * invocation the agent makes, built here as argument arrays (never a shell), and parsers for what
 * those tools print. Pure: `runtime.ts` runs the commands, `host-network.ts` decides when.
 *
 * Every resource carries a known name so a restarted agent finds it again: TAPs are named after
 * their VM (`vm-<8 letters>`, 15 characters, the kernel's limit) and marked with an alias naming
 * the agent's state dir; the private network's VXLAN device is `<bridge>-vx`, its nft tables
 * `kloud_<bridge>`.
 */
import {createHash, randomBytes} from 'node:crypto';
import {join} from 'node:path';
import {PRIVATE_NETWORK_SLOTS, VM_ID_PATTERN} from '../source/protocol/messages.js';

/** One host command: the binary and its argument array, plus what to feed its stdin. */
export type HostCommand = {
	readonly command: string;
	readonly args: readonly string[];
	/** Written to the command's stdin (`nft -f -` reads its ruleset there). */
	readonly input?: string;
};

/** Thrown for a network setting the kernel or the tools would refuse or misread. */
export class NetworkConfigError extends Error {
	override name = 'NetworkConfigError';
}

/** Longest interface name the kernel accepts (`IFNAMSIZ` is 16 with the NUL). */
export const MAX_INTERFACE_NAME = 15;

/** The VXLAN network id and UDP port of the private network (IANA's port for VXLAN). */
export const DEFAULT_VXLAN_ID = 7700;
export const VXLAN_PORT = 4789;

/** VXLAN wraps each frame in 50 bytes of headers: on a 1500-byte underlay the guests get 1450. */
export const VXLAN_OVERHEAD = 50;

const INTERFACE_NAME_PATTERN = /^[A-Za-z\d][\w.-]{0,14}$/;
const NETNS_NAME_PATTERN = /^[A-Za-z\d][\w.-]{0,63}$/;
const MAC_PATTERN = /^[\da-f]{2}(?::[\da-f]{2}){5}$/;

/** Whether `name` is a safe Linux interface name (≤ 15 characters, no slashes, spaces or colons). */
export function isInterfaceName(name: string): boolean {
	return INTERFACE_NAME_PATTERN.test(name);
}

/** Whether `name` is a plain network namespace name (`ip netns add NAME`). */
export function isNetnsName(name: string): boolean {
	return NETNS_NAME_PATTERN.test(name) && !name.includes('..');
}

// ---- MAC addresses ----

/**
 * A random locally-administered unicast MAC: in the first octet the second-least-significant bit
 * is set (not a vendor's address) and the least significant bit is clear (not multicast).
 * `random` is injectable for tests.
 */
export function randomMac(random: (size: number) => Uint8Array = randomBytes): string {
	const bytes = Uint8Array.from(random(6));
	bytes[0] = ((bytes[0] ?? 0) & 0xfc) | 0x02;
	return [...bytes].map(byte => byte.toString(16).padStart(2, '0')).join(':');
}

/** A MAC from `randomMac` that is none of `taken` (lowercase `aa:bb:…` form). */
export function newMac(taken: ReadonlySet<string>, random: (size: number) => Uint8Array = randomBytes): string {
	for (;;) {
		const mac = randomMac(random);
		if (!taken.has(mac)) {
			return mac;
		}
	}
}

/** Whether `mac` is a locally-administered unicast address in lowercase colon form. */
export function isLocalUnicastMac(mac: string): boolean {
	if (!MAC_PATTERN.test(mac)) {
		return false;
	}

	const first = Number.parseInt(mac.slice(0, 2), 16);
	return (first & 0x02) === 0x02 && (first & 0x01) === 0;
}

// ---- addresses ----

/** An IPv4 subnet cut into per-host slices: where this host's gateway and DHCP range are. */
export type PrivateLayout = {
	/** The whole shared subnet, e.g. `10.77.0.0/24`. */
	readonly subnet: string;
	readonly prefix: number;
	readonly netmask: string;
	/** This host's address on its private bridge (the guests' router): the first of its slice. */
	readonly gateway: string;
	/** This host's DHCP range: the rest of its slice. Slices of different hosts never overlap. */
	readonly dhcpStart: string;
	readonly dhcpEnd: string;
	readonly slot: number;
};

/** Parses dotted IPv4 into an unsigned 32-bit number; undefined if it is not one. */
export function parseIpv4(text: string): number | undefined {
	const parts = text.split('.');
	if (parts.length !== 4 || !parts.every(part => /^(?:0|[1-9]\d{0,2})$/.test(part) && Number(part) <= 255)) {
		return undefined;
	}

	return parts.reduce((value, part) => value * 256 + Number(part), 0);
}

/** Formats an unsigned 32-bit number as dotted IPv4. */
export function formatIpv4(value: number): string {
	return [24, 16, 8, 0].map(shift => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Parses `a.b.c.d/len`. Refuses host bits (`10.77.0.5/24`): the operator meant something else. */
export function parseCidr(text: string): {readonly network: number; readonly prefix: number} {
	const [address = '', length = '', ...rest] = text.split('/');
	const network = parseIpv4(address);
	const prefix = /^\d{1,2}$/.test(length) ? Number(length) : Number.NaN;
	if (network === undefined || rest.length > 0 || !(prefix >= 0 && prefix <= 32)) {
		throw new NetworkConfigError(`invalid subnet ${JSON.stringify(text)}: expected an IPv4 CIDR such as 10.77.0.0/24`);
	}

	if (network % 2 ** (32 - prefix) !== 0) {
		throw new NetworkConfigError(`invalid subnet ${text}: it has host bits set (did you mean ${formatIpv4(network - (network % 2 ** (32 - prefix)))}/${prefix}?)`);
	}

	return {network, prefix};
}

/**
 * Slice `slot` of `subnet` cut into `slots` equal parts: its first address is the host's gateway
 * (the slice of slot 0 skips the network address), the rest up to the slice's last address (the
 * subnet's broadcast address excluded) is its DHCP range. Each slice needs at least 16 addresses.
 */
export function privateLayout(subnet: string, slot: number, slots: number = PRIVATE_NETWORK_SLOTS): PrivateLayout {
	const {network, prefix} = parseCidr(subnet);
	if (!Number.isInteger(slot) || slot < 0 || slot >= slots) {
		throw new NetworkConfigError(`invalid private slot ${slot}: expected 0 to ${slots - 1}`);
	}

	const size = 2 ** (32 - prefix);
	const sliceSize = Math.floor(size / slots);
	if (sliceSize < 16) {
		throw new NetworkConfigError(`subnet ${subnet} is too small to split among ${slots} hosts: use a /${32 - Math.log2(16 * slots)} or larger`);
	}

	const sliceStart = network + slot * sliceSize;
	const gateway = sliceStart + 1;
	const isLastSlice = slot === slots - 1;
	return {
		subnet: `${formatIpv4(network)}/${prefix}`,
		prefix,
		netmask: formatIpv4(size === 2 ** 32 ? 0 : 2 ** 32 - size),
		gateway: formatIpv4(gateway),
		dhcpStart: formatIpv4(gateway + 1),
		// The subnet's broadcast address is nobody's; other slices end on a usable address.
		dhcpEnd: formatIpv4(sliceStart + sliceSize - (isLastSlice ? 2 : 1)),
		slot,
	};
}

// ---- names ----

/** The VXLAN device that joins `bridge` to the other hosts' private bridges. */
export function vxlanName(bridge: string): string {
	return `${bridge}-vx`;
}

/** The nft table (ip family: NAT; bridge family: DHCP fences and snooping) for `bridge`. */
export function nftTableName(bridge: string): string {
	return `kloud_${bridge.replaceAll(/[^\w]/g, '_')}`;
}

/**
 * The alias written on every TAP an agent creates, so that at start-up it deletes only its own
 * leftovers, never those of another agent sharing the network namespace. Names the state dir (a
 * hash of it when too long for the kernel's 255-byte alias).
 */
export function tapOwnerMark(stateRoot: string): string {
	const mark = `kloud ${stateRoot}`;
	return Buffer.byteLength(mark) <= 200 ? mark : `kloud sha256:${createHash('sha256').update(stateRoot).digest('hex')}`;
}

/** Files of the host's private network, kept in `<state>/network/`. */
export type PrivateNetworkPaths = {
	readonly dir: string;
	readonly pid: string;
	readonly leases: string;
	readonly log: string;
	/** One `<mac>,<ip>` file per VM (named after it): the addresses dnsmasq serves, and no others. */
	readonly hosts: string;
};

/** Where dnsmasq keeps its pid, leases, log and address reservations: `<state>/network/` (or a subdirectory). */
export function privateNetworkPaths(stateRoot: string, subdirectory?: string): PrivateNetworkPaths {
	const dir = subdirectory === undefined ? join(stateRoot, 'network') : join(stateRoot, 'network', subdirectory);
	return {dir, pid: join(dir, 'dnsmasq.pid'), leases: join(dir, 'dnsmasq.leases'), log: join(dir, 'dnsmasq.log'), hosts: join(dir, 'hosts')};
}

// ---- commands ----

/** `ip ARGS`, inside `netns` when given (`ip -n NAME …`: no process switches namespace). */
export function ip(args: readonly string[], netns?: string): HostCommand {
	return {command: 'ip', args: netns ? ['-n', netns, ...args] : [...args]};
}

/** `bridge ARGS`, inside `netns` when given. */
export function bridgeTool(args: readonly string[], netns?: string): HostCommand {
	return {command: 'bridge', args: netns ? ['-n', netns, ...args] : [...args]};
}

/** Any other tool, inside `netns` through `ip netns exec` (which execs it: same pid, same argv). */
export function inNetns(command: string, args: readonly string[], netns?: string, input?: string): HostCommand {
	const base = netns ? {command: 'ip', args: ['netns', 'exec', netns, command, ...args]} : {command, args: [...args]};
	return input === undefined ? base : {...base, input};
}

/** What a new VM's NIC is plugged into. */
export type TapSpec = {
	readonly tap: string;
	readonly bridge: string;
	readonly owner: string;
	readonly mtu?: number;
	readonly netns?: string;
};

/** Creates a persistent TAP named after the VM, marks it as ours, plugs it into the bridge, up. */
export function tapCreateCommands(spec: TapSpec): HostCommand[] {
	if (!VM_ID_PATTERN.test(spec.tap)) {
		throw new NetworkConfigError(`invalid TAP name ${JSON.stringify(spec.tap)}: TAPs are named after their VM (vm- and 8 letters)`);
	}

	checkInterface('bridge', spec.bridge);
	return [
		// Persistent: QEMU attaches to it by name and it stays (unplugged) after QEMU exits, so the
		// agent deletes it itself. Without it QEMU (as root) would make one on no bridge.
		ip(['tuntap', 'add', 'dev', spec.tap, 'mode', 'tap'], spec.netns),
		ip(['link', 'set', 'dev', spec.tap, 'alias', spec.owner], spec.netns),
		...(spec.mtu === undefined ? [] : [ip(['link', 'set', 'dev', spec.tap, 'mtu', String(spec.mtu)], spec.netns)]),
		ip(['link', 'set', 'dev', spec.tap, 'master', spec.bridge], spec.netns),
		ip(['link', 'set', 'dev', spec.tap, 'up'], spec.netns),
	];
}

/** Deletes a VM's TAP. */
export function tapDeleteCommand(tap: string, netns?: string): HostCommand {
	return ip(['link', 'del', 'dev', tap], netns);
}

/** Lists TUN/TAP devices with their aliases (`ip -d -j link show type tun`), for `parseTaps`. */
export function listTapsCommand(netns?: string): HostCommand {
	return ip(['-d', '-j', 'link', 'show', 'type', 'tun'], netns);
}

/** One link as `ip -j link show DEV` describes it, for `parseLinks`. */
export function showLinkCommand(name: string, netns?: string): HostCommand {
	return ip(['-d', '-j', 'link', 'show', 'dev', name], netns);
}

/** The IPv4 addresses of `dev` (`ip -j -4 addr show dev DEV`), for `parseAddresses`. */
export function showAddressesCommand(dev: string, netns?: string): HostCommand {
	return ip(['-j', '-4', 'addr', 'show', 'dev', dev], netns);
}

/** IPv4 routes through `dev`, for `parseRoutes`. */
export function showRoutesCommand(dev: string, netns?: string): HostCommand {
	return ip(['-j', '-4', 'route', 'show', 'dev', dev], netns);
}

/** IPv4 neighbours on `dev`, for `parseNeighbours`. */
export function showNeighboursCommand(dev: string, netns?: string): HostCommand {
	return ip(['-j', '-4', 'neigh', 'show', 'dev', dev], netns);
}

/** What the agent's private network should look like on this host. */
export type PrivateNetworkSpec = {
	readonly bridge: string;
	readonly layout: PrivateLayout;
	readonly owner: string;
	readonly paths: PrivateNetworkPaths;
	/** Set to join other hosts' private bridges over VXLAN from this underlay address. */
	readonly underlay?: string;
	readonly vxlanId?: number;
	readonly netns?: string;
};

/** What is already there, as read from the host (a fresh host: nothing). */
export type PrivateNetworkObserved = {
	readonly bridge?: LinkInfo;
	readonly bridgeAddresses: readonly string[];
	readonly vxlan?: LinkInfo;
};

/**
 * Brings the private bridge to its wanted state from what is there: creates what is missing,
 * fixes its address, never recreates (VMs stay plugged in across an agent restart). dnsmasq and
 * nft are separate (`dnsmasqArgs`, `privateNftRuleset`).
 */
export function privateBridgeCommands(spec: PrivateNetworkSpec, observed: PrivateNetworkObserved): HostCommand[] {
	checkInterface('bridge', spec.bridge);
	const {netns} = spec;
	const commands: HostCommand[] = [];
	if (observed.bridge && observed.bridge.kind !== 'bridge') {
		throw new NetworkConfigError(`cannot use ${spec.bridge} as the private bridge: it exists and is a ${observed.bridge.kind ?? 'plain'} interface, not a bridge`);
	}

	if (observed.bridge && observed.bridge.alias !== spec.owner) {
		throw new NetworkConfigError(
			`cannot use ${spec.bridge} as the private bridge: it belongs to ${observed.bridge.alias ? `"${observed.bridge.alias}"` : 'someone else'} (choose another --private-bridge)`,
		);
	}

	if (!observed.bridge) {
		commands.push(ip(['link', 'add', 'name', spec.bridge, 'type', 'bridge'], netns), ip(['link', 'set', 'dev', spec.bridge, 'alias', spec.owner], netns));
	}

	const wanted = `${spec.layout.gateway}/${spec.layout.prefix}`;
	for (const address of observed.bridgeAddresses) {
		if (address !== wanted) {
			commands.push(ip(['addr', 'del', address, 'dev', spec.bridge], netns));
		}
	}

	if (!observed.bridgeAddresses.includes(wanted)) {
		commands.push(ip(['addr', 'add', wanted, 'dev', spec.bridge], netns));
	}

	commands.push(ip(['link', 'set', 'dev', spec.bridge, 'up'], netns));
	if (spec.underlay !== undefined) {
		const vxlan = vxlanName(spec.bridge);
		checkInterface('VXLAN device', vxlan);
		const id = String(spec.vxlanId ?? DEFAULT_VXLAN_ID);
		if (observed.vxlan && (observed.vxlan.kind !== 'vxlan' || observed.vxlan.vxlanId !== Number(id) || observed.vxlan.local !== spec.underlay)) {
			commands.push(ip(['link', 'del', 'dev', vxlan], netns));
		}

		if (!observed.vxlan || observed.vxlan.kind !== 'vxlan' || observed.vxlan.vxlanId !== Number(id) || observed.vxlan.local !== spec.underlay) {
			// Learning stays on: unicast goes straight to the host that has the MAC; broadcasts
			// (ARP, DHCP) go to every peer through the all-zero FDB entries `fdbCommands` adds.
			commands.push(ip(['link', 'add', 'name', vxlan, 'type', 'vxlan', 'id', id, 'local', spec.underlay, 'dstport', String(VXLAN_PORT)], netns));
		}

		commands.push(ip(['link', 'set', 'dev', vxlan, 'master', spec.bridge], netns), ip(['link', 'set', 'dev', vxlan, 'up'], netns));
	} else if (observed.vxlan) {
		commands.push(ip(['link', 'del', 'dev', vxlanName(spec.bridge)], netns));
	}

	return commands;
}

/** Routing between the private bridge and the uplink: NAT needs the kernel to forward. */
export function ipForwardCommand(netns?: string): HostCommand {
	return inNetns('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], netns);
}

/**
 * nft lines that remove table `family name` whether or not it exists (declaring an empty one
 * first keeps `delete` from failing), so a ruleset that follows can define it afresh.
 */
export function dropTable(family: 'ip' | 'inet' | 'bridge', name: string): string[] {
	return [`table ${family} ${name} {}`, `delete table ${family} ${name}`];
}

/**
 * The private network's nft tables, replaced atomically (`nft -f -`): masquerade for traffic
 * leaving the subnet, and, with VXLAN, a fence that keeps DHCP off the tunnel so each host's
 * dnsmasq serves only its own VMs (every lease then comes from this host's slice).
 */
export function privateNftRuleset(spec: {readonly bridge: string; readonly subnet: string; readonly hasVxlan: boolean}): string {
	const table = nftTableName(spec.bridge);
	const vxlan = vxlanName(spec.bridge);
	const lines = [
		...dropTable('ip', table),
		`table ip ${table} {`,
		'\tchain postrouting {',
		'\t\ttype nat hook postrouting priority srcnat; policy accept;',
		`\t\tip saddr ${spec.subnet} ip daddr != ${spec.subnet} masquerade`,
		'\t}',
		'}',
		...dropTable('bridge', table),
	];
	if (spec.hasVxlan) {
		const fence = (hook: 'forward' | 'input' | 'output') => [
			`\tchain ${hook} {`,
			`\t\ttype filter hook ${hook} priority filter; policy accept;`,
			...(hook === 'input' ? [] : [`\t\toifname "${vxlan}" udp dport { 67, 68 } drop`]),
			...(hook === 'output' ? [] : [`\t\tiifname "${vxlan}" udp dport { 67, 68 } drop`]),
			'\t}',
		];
		lines.push(`table bridge ${table} {`, ...fence('forward'), ...fence('input'), ...fence('output'), '}');
	}

	return `${lines.join('\n')}\n`;
}

/** Applies an nft ruleset from stdin. */
export function nftApplyCommand(ruleset: string, netns?: string): HostCommand {
	return inNetns('nft', ['-f', '-'], netns, ruleset);
}

/** Removes the private network's nft tables (both families); fails if they are not there. */
export function privateNftTeardown(bridge: string): string {
	const table = nftTableName(bridge);
	return `${[...dropTable('ip', table), ...dropTable('bridge', table)].join('\n')}\n`;
}

/**
 * dnsmasq's argv for the private bridge: DHCP from this host's slice only, answering at once
 * (`--no-ping`: the default 3 s ping check makes quick clients give up) and authoritatively (a
 * restarted dnsmasq re-grants leases it forgot), leases and pid in the state dir so a restarted
 * agent finds the running one. It daemonises itself and outlives the agent, like the VMs.
 */
export function dnsmasqArgs(spec: PrivateNetworkSpec, reservations: ReadonlyArray<{readonly mac: string; readonly ip: string}> = []): string[] {
	checkInterface('bridge', spec.bridge);
	const {layout, paths} = spec;
	return [
		// No /etc/dnsmasq.conf: only what is here.
		'--conf-file=/dev/null',
		'--bind-interfaces',
		`--interface=${spec.bridge}`,
		'--except-interface=lo',
		`--pid-file=${paths.pid}`,
		`--dhcp-leasefile=${paths.leases}`,
		`--log-facility=${paths.log}`,
		'--log-dhcp',
		// Static: dnsmasq hands out only the addresses the agent reserved, one per VM. A guest asking
		// with a made-up MAC or client id gets nothing, and the anti-spoofing rules know each VM's
		// address before it boots. (On the command line: dnsmasq reads files only after dropping to
		// an unprivileged user, who cannot enter the 0700 state dir.)
		`--dhcp-range=${layout.dhcpStart},static,${layout.netmask},12h`,
		...[...reservations].sort((a, b) => a.mac.localeCompare(b.mac)).map(reservation => `--dhcp-host=${reservation.mac},${reservation.ip}`),
		'--dhcp-authoritative',
		'--no-ping',
		...(spec.underlay === undefined ? [] : [`--dhcp-option=option:mtu,${1500 - VXLAN_OVERHEAD}`]),
	];
}

/** Starts dnsmasq (it forks into the background and exits 0 once it serves, or fails at once). */
export function dnsmasqCommand(spec: PrivateNetworkSpec, reservations: ReadonlyArray<{readonly mac: string; readonly ip: string}> = []): HostCommand {
	return inNetns('dnsmasq', dnsmasqArgs(spec, reservations), spec.netns);
}

/** Tells dnsmasq a stopped VM's lease is free again, so the slice never fills with the dead. */
export function dhcpReleaseCommand(spec: {readonly bridge: string; readonly ip: string; readonly mac: string; readonly netns?: string}): HostCommand {
	return inNetns('dhcp_release', [spec.bridge, spec.ip, spec.mac], spec.netns);
}

/** The all-zero FDB entries on the VXLAN device: one per peer, where broadcasts are copied to. */
export function fdbCommands(spec: {
	readonly bridge: string;
	readonly wanted: readonly string[];
	readonly present: readonly string[];
	readonly netns?: string;
}): HostCommand[] {
	const dev = vxlanName(spec.bridge);
	const wanted = new Set(spec.wanted);
	const present = new Set(spec.present);
	return [
		...[...present].filter(peer => !wanted.has(peer)).map(peer => bridgeTool(['fdb', 'del', '00:00:00:00:00:00', 'dev', dev, 'dst', peer], spec.netns)),
		...[...wanted].filter(peer => !present.has(peer)).map(peer => bridgeTool(['fdb', 'append', '00:00:00:00:00:00', 'dev', dev, 'dst', peer], spec.netns)),
	];
}

/** The VXLAN device's FDB, for `parseFloodPeers`. */
export function showFdbCommand(bridge: string, netns?: string): HostCommand {
	return bridgeTool(['-j', 'fdb', 'show', 'dev', vxlanName(bridge)], netns);
}

/** What the public bridge's set-up found on the host. */
export type PublicObserved = {
	readonly bridge?: LinkInfo;
	readonly uplink?: LinkInfo;
	readonly uplinkAddresses: readonly string[];
	readonly uplinkRoutes: readonly RouteInfo[];
};

/**
 * The tutorial's `init_bridge`, done only when the operator named both a bridge and an uplink and
 * the bridge does not exist yet: bridge up with the uplink's MAC (a DHCP reservation for the host
 * keeps working), the uplink enslaved, its addresses and routes moved to the bridge. An existing
 * bridge is used exactly as it is: never reconfigured, never broken.
 */
export function publicBridgeCommands(spec: {readonly bridge: string; readonly uplink?: string; readonly netns?: string}, observed: PublicObserved): HostCommand[] {
	checkInterface('public bridge', spec.bridge);
	const {netns} = spec;
	if (observed.bridge) {
		if (observed.bridge.kind !== 'bridge') {
			throw new NetworkConfigError(`cannot use ${spec.bridge} as the public bridge: it is a ${observed.bridge.kind ?? 'plain'} interface, not a bridge`);
		}

		return [];
	}

	if (spec.uplink === undefined) {
		throw new NetworkConfigError(`the public bridge ${spec.bridge} does not exist: create it, or give --uplink so the agent bridges that interface`);
	}

	checkInterface('uplink', spec.uplink);
	if (!observed.uplink) {
		throw new NetworkConfigError(`the uplink ${spec.uplink} does not exist`);
	}

	if (observed.uplink.master !== undefined) {
		throw new NetworkConfigError(`the uplink ${spec.uplink} is already enslaved to ${observed.uplink.master}: name that bridge as --public-bridge instead`);
	}

	const commands = [
		ip(['link', 'add', 'name', spec.bridge, 'type', 'bridge'], netns),
		...(observed.uplink.address ? [ip(['link', 'set', 'dev', spec.bridge, 'address', observed.uplink.address], netns)] : []),
		ip(['link', 'set', 'dev', spec.bridge, 'up'], netns),
		ip(['link', 'set', 'dev', spec.uplink, 'master', spec.bridge], netns),
		ip(['link', 'set', 'dev', spec.uplink, 'up'], netns),
	];
	for (const address of observed.uplinkAddresses) {
		commands.push(ip(['addr', 'del', address, 'dev', spec.uplink], netns), ip(['addr', 'add', address, 'dev', spec.bridge], netns));
	}

	// Deleting the addresses took the routes through the uplink with them: put the gateways back.
	for (const route of observed.uplinkRoutes) {
		if (route.gateway !== undefined) {
			commands.push(ip(['route', 'replace', route.dst, 'via', route.gateway, 'dev', spec.bridge, ...(route.metric === undefined ? [] : ['metric', String(route.metric)])], netns));
		}
	}

	return commands;
}

/**
 * DHCP snooping on the public bridge, so the agent learns each VM's LAN address without the guest's
 * help: every DHCP answer forwarded to a VM's TAP records (client MAC, offered address) from the
 * BOOTP header (`chaddr` at UDP payload byte 28, `yiaddr` at byte 16) in a timed set.
 */
export function publicSnoopRuleset(bridge: string): string {
	const table = nftTableName(bridge);
	return [
		`table bridge ${table} {`,
		'\tset leases {',
		'\t\ttypeof @th,288,48 . @th,192,32',
		'\t\tflags dynamic,timeout',
		'\t\ttimeout 1d',
		'\t}',
		'\tchain forward {',
		'\t\ttype filter hook forward priority filter; policy accept;',
		'\t\toifname "vm-*" udp sport 67 udp dport 68 @th,192,32 != 0 update @leases { @th,288,48 . @th,192,32 }',
		'\t}',
		'}',
		'',
	].join('\n');
}

/** Whether the public bridge's snooping table is there (exit status 0), before adding it once. */
export function publicSnoopShowCommand(bridge: string, netns?: string): HostCommand {
	return inNetns('nft', ['list', 'table', 'bridge', nftTableName(bridge)], netns);
}

/** The snooped (MAC, address) pairs, for `parseSnoopedLeases`. */
export function publicSnoopListCommand(bridge: string, netns?: string): HostCommand {
	return inNetns('nft', ['-j', 'list', 'set', 'bridge', nftTableName(bridge), 'leases'], netns);
}

// ---- parsers ----

/** What the agent needs to know of one link from `ip -d -j link show`. */
export type LinkInfo = {
	readonly name: string;
	readonly kind?: string;
	readonly alias?: string;
	readonly master?: string;
	readonly address?: string;
	readonly vxlanId?: number;
	readonly local?: string;
};

/** Parses `ip -d -j link show …` output (an empty string, for no links, gives none). */
export function parseLinks(json: string): LinkInfo[] {
	const rows = parseJsonArray(json);
	return rows.flatMap(row => {
		if (typeof row.ifname !== 'string') {
			return [];
		}

		const linkinfo = isRecord(row.linkinfo) ? row.linkinfo : {};
		const data = isRecord(linkinfo.info_data) ? linkinfo.info_data : {};
		return [
			{
				name: row.ifname,
				...(typeof linkinfo.info_kind === 'string' ? {kind: linkinfo.info_kind} : {}),
				...(typeof row.ifalias === 'string' ? {alias: row.ifalias} : {}),
				...(typeof row.master === 'string' ? {master: row.master} : {}),
				...(typeof row.address === 'string' ? {address: row.address} : {}),
				...(typeof data.id === 'number' ? {vxlanId: data.id} : {}),
				...(typeof data.local === 'string' ? {local: data.local} : {}),
			},
		];
	});
}

/** The VM TAPs among `links` that carry `owner`'s mark. */
export function ownedTaps(links: readonly LinkInfo[], owner: string): string[] {
	return links.filter(link => VM_ID_PATTERN.test(link.name) && link.alias === owner).map(link => link.name);
}

/** Parses `ip -j -4 addr show dev …` into `address/prefix` strings (global scope only). */
export function parseAddresses(json: string): string[] {
	return parseJsonArray(json).flatMap(row =>
		Array.isArray(row.addr_info)
			? row.addr_info.flatMap((info: unknown) =>
					isRecord(info) && info.family === 'inet' && typeof info.local === 'string' && typeof info.prefixlen === 'number' && info.scope !== 'host'
						? [`${info.local}/${info.prefixlen}`]
						: [],
				)
			: [],
	);
}

/** One IPv4 route. */
export type RouteInfo = {readonly dst: string; readonly gateway?: string; readonly metric?: number};

/** Parses `ip -j -4 route show dev …`. */
export function parseRoutes(json: string): RouteInfo[] {
	return parseJsonArray(json).flatMap(row =>
		typeof row.dst === 'string'
			? [
					{
						dst: row.dst,
						...(typeof row.gateway === 'string' ? {gateway: row.gateway} : {}),
						...(typeof row.metric === 'number' ? {metric: row.metric} : {}),
					},
				]
			: [],
	);
}

/** Parses `ip -j -4 neigh show …` into MAC → IPv4 (entries still believed reachable or stale). */
export function parseNeighbours(json: string): Map<string, string> {
	const byMac = new Map<string, string>();
	for (const row of parseJsonArray(json)) {
		const states = Array.isArray(row.state) ? row.state : [];
		if (typeof row.dst === 'string' && typeof row.lladdr === 'string' && !states.includes('FAILED') && !states.includes('INCOMPLETE')) {
			byMac.set(row.lladdr.toLowerCase(), row.dst);
		}
	}

	return byMac;
}

/** Parses `bridge -j fdb show dev <vxlan>` into the peers broadcasts are flooded to. */
export function parseFloodPeers(json: string): string[] {
	return parseJsonArray(json)
		.filter(row => row.mac === '00:00:00:00:00:00' && typeof row.dst === 'string')
		.map(row => row.dst as string);
}

/**
 * A DHCP lease: which address the server gave to which MAC, and until when (epoch seconds; 0 =
 * never ends); dnsmasq's leases file also has the client id the guest asked with.
 */
export type Lease = {readonly mac: string; readonly ip: string; readonly expires: number; readonly clientId?: string};

const CLIENT_ID_PATTERN = /^[\da-f]{2}(?::[\da-f]{2}){0,63}$/;

/** Parses a dnsmasq leases file (`<expiry> <mac> <ip> <hostname> <client-id>` per line). */
export function parseLeases(text: string): Lease[] {
	const leases: Lease[] = [];
	for (const line of text.split('\n')) {
		const [expiry = '', mac = '', address = '', , clientId = '*'] = line.trim().split(/\s+/);
		if (/^\d+$/.test(expiry) && MAC_PATTERN.test(mac.toLowerCase()) && parseIpv4(address) !== undefined) {
			const id = clientId.toLowerCase();
			leases.push({mac: mac.toLowerCase(), ip: address, expires: Number(expiry), ...(CLIENT_ID_PATTERN.test(id) ? {clientId: id} : {})});
		}
	}

	return leases;
}

/**
 * A dnsmasq leases file with `lease` in it (for a VM migrated in: dnsmasq, started on this file,
 * knows the lease the guest holds): lines for the same MAC or address go, the rest is kept as is.
 */
export function withLease(text: string, lease: Lease): string {
	const kept = text.split('\n').filter(line => {
		const [, mac = '', address = ''] = line.trim().split(/\s+/);
		return line.trim() !== '' && mac.toLowerCase() !== lease.mac && address !== lease.ip;
	});
	return [...kept, `${lease.expires} ${lease.mac} ${lease.ip} * ${lease.clientId ?? '*'}`].join('\n') + '\n';
}

/** The address leased to each MAC; with several leases for one MAC the one ending last wins. */
export function leasesByMac(leases: readonly Lease[]): Map<string, string> {
	const best = new Map<string, Lease>();
	for (const lease of leases) {
		const previous = best.get(lease.mac);
		const ends = (entry: Lease) => (entry.expires === 0 ? Number.POSITIVE_INFINITY : entry.expires);
		if (!previous || ends(lease) >= ends(previous)) {
			best.set(lease.mac, lease);
		}
	}

	return new Map([...best].map(([mac, lease]) => [mac, lease.ip]));
}

/** Parses `nft -j list set … leases` (elements `chaddr . yiaddr` as integers) into leases. */
export function parseSnoopedLeases(json: string): Lease[] {
	let parsed: unknown;
	try {
		parsed = JSON.parse(json);
	} catch {
		return [];
	}

	const items = isRecord(parsed) && Array.isArray(parsed.nftables) ? parsed.nftables : [];
	const leases: Lease[] = [];
	for (const item of items) {
		const elements = isRecord(item) && isRecord(item.set) && Array.isArray(item.set.elem) ? item.set.elem : [];
		for (const element of elements) {
			// With timeouts an element is {elem: {val: {concat: [mac, ip]}, expires}}; without, the bare concat.
			const wrapper = isRecord(element) && isRecord(element.elem) ? element.elem : element;
			const value = isRecord(wrapper) && 'val' in wrapper ? wrapper.val : wrapper;
			const concat = isRecord(value) && Array.isArray(value.concat) ? value.concat : undefined;
			const [macValue, ipValue] = concat ?? [];
			const mac = integerToMac(macValue);
			const address = typeof ipValue === 'number' && ipValue > 0 && ipValue < 2 ** 32 ? formatIpv4(ipValue) : undefined;
			if (mac && address) {
				const expires = isRecord(wrapper) && typeof wrapper.expires === 'number' ? wrapper.expires : 0;
				leases.push({mac, ip: address, expires});
			}
		}
	}

	return leases;
}

function integerToMac(value: unknown): string | undefined {
	// 48-bit integers lose no precision as JSON numbers; nft may also print them as hex strings.
	const number = typeof value === 'number' ? value : typeof value === 'string' && /^0x[\da-f]{1,12}$/i.test(value) ? Number.parseInt(value, 16) : undefined;
	if (number === undefined || !Number.isSafeInteger(number) || number < 0 || number >= 2 ** 48) {
		return undefined;
	}

	return number
		.toString(16)
		.padStart(12, '0')
		.match(/../g)!
		.join(':');
}

function checkInterface(what: string, name: string): void {
	if (!isInterfaceName(name)) {
		throw new NetworkConfigError(`invalid ${what} name ${JSON.stringify(name)}: use 1-15 letters, digits, '.', '_' or '-'`);
	}
}

function parseJsonArray(json: string): Array<Record<string, any>> {
	if (json.trim() === '') {
		return [];
	}

	try {
		const parsed: unknown = JSON.parse(json);
		return Array.isArray(parsed) ? parsed.filter(row => isRecord(row)) : [];
	} catch {
		return [];
	}
}

function isRecord(value: unknown): value is Record<string, any> {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}
