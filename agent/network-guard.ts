/**
 * The agent's firewall for VM traffic, as nft rulesets (data; `host-network.ts` applies them with
 * `nft -f -`, replacing the tables atomically). Two tables per agent, named after its
 * `--private-bridge` so a restarted agent (or an operator) finds them:
 *
 * - `bridge kloudg_<bridge>`: per TAP, the VM may send only from its own MAC and (private VMs) its
 *   reserved address, ARP only about itself, never as a DHCP server nor a router advertiser
 *   (private VMs: nothing but IPv4 and ARP at all, so no IPv6 RA and no VLAN tags). Checked at the
 *   bridge's prerouting hook, before the bridge learns the source MAC.
 * - `inet kloudg_<bridge>`: from the private bridges the host accepts DHCP and DNS only (and
 *   answers to what it asked itself); traffic between two private bridges (two tenants) is never
 *   routed; VXLAN (UDP 4789) is accepted only from the peers in the roster.
 */
import {dropTable, VXLAN_PORT} from './network.js';

/** What one TAP may send. */
export type TapGuard = {
	readonly tap: string;
	readonly mac: string;
	/** The VM's reserved address (private VMs); undefined: MAC checks only (public VMs, whose address is the LAN's business). */
	readonly ip?: string;
	readonly network: 'private' | 'public';
};

/** The state of the guard: every guarded TAP, the private bridges, the VXLAN peers (undefined: no VXLAN). */
export type GuardSpec = {
	readonly table: string;
	readonly taps: readonly TapGuard[];
	readonly bridges: readonly string[];
	readonly peers?: readonly string[];
};

/** The guard tables' name for the agent whose private bridge is `privateBridge`. */
export function guardTableName(privateBridge: string): string {
	return `kloudg_${privateBridge.replaceAll(/[^\w]/g, '_')}`;
}

function tapChain(guard: TapGuard): string[] {
	const rules =
		guard.network === 'private' && guard.ip !== undefined
			? [
					`ether saddr != ${guard.mac} drop`,
					// Only IPv4 and ARP: no IPv6 (so no router advertisements), no VLAN-tagged frames.
					'ether type != { ip, arp } drop',
					`arp saddr ether != ${guard.mac} drop`,
					// 0.0.0.0: the DHCP client's address probe.
					`arp saddr ip != { ${guard.ip}, 0.0.0.0 } drop`,
					`ip saddr != { ${guard.ip}, 0.0.0.0 } drop`,
					// Before it has an address a VM may only ask for one.
					'ip saddr 0.0.0.0 udp dport != 67 drop',
					'udp sport 67 drop',
				]
			: [
					`ether saddr != ${guard.mac} drop`,
					`arp saddr ether != ${guard.mac} drop`,
					'ether type 8021q drop',
					// DHCP and DHCPv6 servers, IPv6 router advertisements: the LAN's job, never a VM's.
					'udp sport { 67, 547 } drop',
					'icmpv6 type nd-router-advert drop',
				];
	return [`\tchain ${guard.tap} {`, ...rules.map(rule => `\t\t${rule}`), '\t}'];
}

/** The two guard tables, replaced as a whole (`nft -f -` applies it atomically). */
export function guardRuleset(spec: GuardSpec): string {
	const {table} = spec;
	const taps = [...spec.taps].sort((a, b) => a.tap.localeCompare(b.tap));
	const elements = (values: readonly string[]) => (values.length === 0 ? [] : [`\t\telements = { ${values.join(', ')} }`]);
	const lines = [
		...dropTable('bridge', table),
		`table bridge ${table} {`,
		'\tmap taps {',
		'\t\ttype ifname : verdict',
		...elements(taps.map(guard => `"${guard.tap}" : jump ${guard.tap}`)),
		'\t}',
		'\tchain prerouting {',
		'\t\ttype filter hook prerouting priority filter; policy accept;',
		'\t\tiifname vmap @taps',
		'\t}',
		...taps.flatMap(guard => tapChain(guard)),
		'}',
		...dropTable('inet', table),
		`table inet ${table} {`,
		'\tset bridges {',
		'\t\ttype ifname',
		...elements([...spec.bridges].sort().map(bridge => `"${bridge}"`)),
		'\t}',
		'\tset peers {',
		'\t\ttype ipv4_addr',
		...elements([...(spec.peers ?? [])].sort()),
		'\t}',
		'\tchain input {',
		'\t\ttype filter hook input priority filter; policy accept;',
		// Answers to what the host itself asked (a ping or a connection from the host to a VM).
		'\t\tiifname @bridges ct state established,related accept',
		'\t\tiifname @bridges udp dport { 53, 67 } accept',
		'\t\tiifname @bridges tcp dport 53 accept',
		'\t\tiifname @bridges drop',
		...(spec.peers === undefined ? [] : [`\t\tudp dport ${VXLAN_PORT} ip saddr != @peers drop`]),
		'\t}',
		'\tchain forward {',
		'\t\ttype filter hook forward priority filter; policy accept;',
		// Two private bridges are two tenants: the host never routes between them. (Per bridge, not
		// "@bridges to @bridges": with br_netfilter, frames bridged within one bridge pass here too,
		// in and out on that bridge.)
		...[...spec.bridges].sort().map(bridge => `\t\tiifname "${bridge}" oifname != "${bridge}" oifname @bridges drop`),
		'\t}',
		'}',
	];
	return `${lines.join('\n')}\n`;
}

/** Removes both guard tables (the declarations first, so it never fails on a missing one). */
export function guardTeardown(table: string): string {
	return `${[...dropTable('bridge', table), ...dropTable('inet', table)].join('\n')}\n`;
}
