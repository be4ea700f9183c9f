import {describe, expect, it} from 'vitest';
import {guardRuleset, guardTableName, guardTeardown} from '../agent/network-guard.js';
import {isInterfaceName, NetworkConfigError, privateLayout, vxlanName} from '../agent/network.js';
import {
	allocateAddress,
	dhcpHostLine,
	isTenantBridgeName,
	parseDhcpHostLine,
	TENANT_VXLAN_BASE,
	tenantCollision,
	tenantNetworkIdentity,
} from '../agent/tenant-network.js';

describe('tenant network identity', () => {
	it('is derived from the name alone: the same on every host, different per tenant', () => {
		const alice = tenantNetworkIdentity('alice');
		expect(tenantNetworkIdentity('alice')).toEqual(alice);
		expect(alice).toMatchObject({tenant: 'alice', bridge: expect.stringMatching(/^kt[\da-f]{8}$/), subnet: expect.stringMatching(/^10\.(1[2-9]\d|2[0-5]\d)\.\d+\.0\/24$/)});
		expect(alice.vxlanId).toBeGreaterThanOrEqual(TENANT_VXLAN_BASE);
		expect(alice.vxlanId).toBeLessThanOrEqual(16_777_215);
		const bob = tenantNetworkIdentity('bob');
		expect(bob.bridge).not.toBe(alice.bridge);
		expect(bob.vxlanId).not.toBe(alice.vxlanId);
		// Names fit the kernel's 15 characters, VXLAN device included.
		expect(isInterfaceName(vxlanName(alice.bridge))).toBe(true);
		expect(isTenantBridgeName(alice.bridge)).toBe(true);
	});

	it.each([
		['kloud0', false],
		['kt0123abcd', true],
		['kt0123abcd-vx', false],
		['kt0123ABCD', false],
		['kt0123abc', false],
	])('isTenantBridgeName(%s) is %s', (name, expected) => {
		expect(isTenantBridgeName(name)).toBe(expected);
	});

	it('takes its /24 from the configured pool; refuses a pool smaller than one /24', () => {
		expect(tenantNetworkIdentity('alice', '10.200.7.0/24').subnet).toBe('10.200.7.0/24');
		expect(tenantNetworkIdentity('alice', '172.16.0.0/12').subnet).toMatch(/^172\.(1[6-9]|2\d|3[01])\.\d+\.0\/24$/);
		expect(() => tenantNetworkIdentity('alice', '10.0.0.0/25')).toThrow(NetworkConfigError);
		expect(() => tenantNetworkIdentity('alice', 'banana')).toThrow(NetworkConfigError);
	});

	it('spreads 1,000 tenants over distinct VXLAN ids and bridges', () => {
		const identities = Array.from({length: 1000}, (_, index) => tenantNetworkIdentity(`tenant-${index}`));
		expect(new Set(identities.map(identity => identity.vxlanId)).size).toBe(1000);
		expect(new Set(identities.map(identity => identity.bridge)).size).toBe(1000);
	});

	it('a collision on one host is refused with what collides', () => {
		const alice = tenantNetworkIdentity('alice');
		const bob = tenantNetworkIdentity('bob');
		expect(tenantCollision(alice, [bob])).toBeUndefined();
		expect(tenantCollision(alice, [alice])).toBeUndefined();
		expect(tenantCollision(alice, [{...bob, subnet: alice.subnet}])).toMatch(/share subnet 10\..*with another tenant/);
		expect(tenantCollision(alice, [{...bob, vxlanId: alice.vxlanId}])).toMatch(/share VXLAN id/);
		expect(tenantCollision(alice, [{...bob, bridge: alice.bridge}])).toMatch(/share bridge kt/);
	});
});

describe('address reservations', () => {
	const layout = privateLayout('10.77.0.0/24', 1);

	it.each([
		['the first of the slice', new Set<string>(), undefined, '10.77.0.34'],
		['the next after the last one handed out', new Set<string>(), '10.77.0.40', '10.77.0.41'],
		['skipping taken ones', new Set(['10.77.0.41', '10.77.0.42']), '10.77.0.40', '10.77.0.43'],
		['wrapping round at the end of the slice', new Set<string>(), '10.77.0.63', '10.77.0.34'],
		['none when the slice is full', new Set(Array.from({length: 30}, (_, index) => `10.77.0.${34 + index}`)), undefined, undefined],
	])('allocateAddress: %s', (_name, taken, last, expected) => {
		expect(allocateAddress(layout, taken, last)).toBe(expected);
	});

	it('a reservation reads back; anything else is none', () => {
		expect(parseDhcpHostLine(dhcpHostLine('02:aa:bb:cc:dd:ee', '10.77.0.34'))).toEqual({mac: '02:aa:bb:cc:dd:ee', ip: '10.77.0.34'});
		expect(parseDhcpHostLine('02:aa:bb:cc:dd:ee,10.77.0.999')).toBeUndefined();
		expect(parseDhcpHostLine('02:aa:bb:cc:dd:ee,10.77.0.3,extra')).toBeUndefined();
		expect(parseDhcpHostLine('')).toBeUndefined();
	});
});

describe('the guard (nft)', () => {
	const table = guardTableName('kloud0');
	const ruleset = guardRuleset({
		table,
		taps: [
			{tap: 'vm-bbbbbbbb', mac: '02:00:00:00:00:02', network: 'public'},
			{tap: 'vm-aaaaaaaa', mac: '02:00:00:00:00:01', ip: '10.77.0.2', network: 'private'},
		],
		bridges: ['kt0123abcd', 'kloud0'],
		peers: ['192.0.2.2', '192.0.2.1'],
	});

	it('replaces both tables atomically, every TAP in the verdict map', () => {
		expect(table).toBe('kloudg_kloud0');
		expect(ruleset).toMatch(/^table bridge kloudg_kloud0 \{\}\ndelete table bridge kloudg_kloud0\n/);
		expect(ruleset).toContain('\ntable inet kloudg_kloud0 {}\ndelete table inet kloudg_kloud0\n');
		expect(ruleset).toContain('elements = { "vm-aaaaaaaa" : jump vm-aaaaaaaa, "vm-bbbbbbbb" : jump vm-bbbbbbbb }');
		expect(ruleset).toContain('iifname vmap @taps');
	});

	it.each([
		['its own MAC only', 'vm-aaaaaaaa', 'ether saddr != 02:00:00:00:00:01 drop'],
		['IPv4 and ARP only (no RA, no VLAN tags)', 'vm-aaaaaaaa', 'ether type != { ip, arp } drop'],
		['ARP about itself only', 'vm-aaaaaaaa', 'arp saddr ip != { 10.77.0.2, 0.0.0.0 } drop'],
		['its own address only', 'vm-aaaaaaaa', 'ip saddr != { 10.77.0.2, 0.0.0.0 } drop'],
		['no DHCP server', 'vm-aaaaaaaa', 'udp sport 67 drop'],
		['public: its own MAC only', 'vm-bbbbbbbb', 'ether saddr != 02:00:00:00:00:02 drop'],
		['public: no DHCP or DHCPv6 server', 'vm-bbbbbbbb', 'udp sport { 67, 547 } drop'],
		['public: no router advertisements', 'vm-bbbbbbbb', 'icmpv6 type nd-router-advert drop'],
	])('a TAP\'s chain: %s', (_name, tap, rule) => {
		const chain = ruleset.split(`\tchain ${tap} {\n`)[1]?.split('\n\t}')[0] ?? '';
		expect(chain.split('\n')).toContain(`\t\t${rule}`);
	});

	it('the host answers guests DHCP and DNS only, routes nothing between private bridges, takes VXLAN from peers only', () => {
		expect(ruleset).toContain('elements = { "kloud0", "kt0123abcd" }');
		expect(ruleset).toContain('elements = { 192.0.2.1, 192.0.2.2 }');
		const input = /chain input \{\n([^]*?)\n\t\}/.exec(ruleset)?.[1];
		expect(input?.split('\n').map(line => line.trim())).toEqual([
			'type filter hook input priority filter; policy accept;',
			'iifname @bridges ct state established,related accept',
			'iifname @bridges udp dport { 53, 67 } accept',
			'iifname @bridges tcp dport 53 accept',
			'iifname @bridges drop',
			'udp dport 4789 ip saddr != @peers drop',
		]);
		expect(ruleset).toContain('\t\tiifname "kloud0" oifname != "kloud0" oifname @bridges drop\n\t\tiifname "kt0123abcd" oifname != "kt0123abcd" oifname @bridges drop\n');
	});

	it('without VXLAN there is no peer rule; empty sets have no elements line', () => {
		const bare = guardRuleset({table, taps: [], bridges: []});
		expect(bare).not.toContain('4789');
		expect(bare).not.toContain('elements');
		// An empty peer list (VXLAN on, nobody known yet) lets no VXLAN in.
		expect(guardRuleset({table, taps: [], bridges: [], peers: []})).toContain('udp dport 4789 ip saddr != @peers drop');
	});

	it('teardown declares before deleting, so it never fails on a missing table', () => {
		expect(guardTeardown(table)).toBe('table bridge kloudg_kloud0 {}\ndelete table bridge kloudg_kloud0\ntable inet kloudg_kloud0 {}\ndelete table inet kloudg_kloud0\n');
	});
});
