/**
 * Tenant networks, as data: in `--tenants` mode each tenant's private VMs live on an L2 network of
 * their own. Everything about it is derived from the tenant's name alone, so every host agrees
 * without talking: the bridge `kt<8 hex>`, the VXLAN id and the /24 out of the tenant pool. And
 * each VM's address is reserved by the agent (a dnsmasq hosts file), so the anti-spoofing rules
 * know it before the guest boots. Pure: `host-network.ts` decides when.
 */
import {createHash} from 'node:crypto';
import {formatIpv4, NetworkConfigError, parseCidr, parseIpv4, type PrivateLayout} from './network.js';

/** Where tenant networks come from unless the operator says otherwise. */
export const DEFAULT_TENANT_SUBNETS = '10.128.0.0/9';
/** Tenant VXLAN ids: base + (hash mod span), far from the shared network's default 7700. */
export const TENANT_VXLAN_BASE = 1_000_000;
export const TENANT_VXLAN_SPAN = 2 ** 24 - 1 - TENANT_VXLAN_BASE;
/** Each tenant's subnet: a /24, cut into the same 8 per-host slices as the shared network. */
export const TENANT_PREFIX = 24;

const TENANT_BRIDGE_PATTERN = /^kt[\da-f]{8}$/;

/** What a tenant's network is called and numbered: the same on every host. */
export type TenantNetworkIdentity = {
	readonly tenant: string;
	/** `kt` and 8 hex digits of the name's hash: its VXLAN device `kt…-vx` fits 15 characters. */
	readonly bridge: string;
	readonly vxlanId: number;
	/** A /24 out of the tenant pool. */
	readonly subnet: string;
};

/** Whether `name` is a tenant bridge's name (what a restarted agent looks for). */
export function isTenantBridgeName(name: string): boolean {
	return TENANT_BRIDGE_PATTERN.test(name);
}

/**
 * The tenant's bridge, VXLAN id and subnet, from two independent hashes of its name (so a subnet
 * collision does not imply a VXLAN one). Collisions with another tenant are possible and are
 * refused where they matter, on one host (`tenantCollision`).
 */
export function tenantNetworkIdentity(tenant: string, pool: string = DEFAULT_TENANT_SUBNETS): TenantNetworkIdentity {
	const {network, prefix} = parseCidr(pool);
	if (prefix > TENANT_PREFIX) {
		throw new NetworkConfigError(`tenant subnet pool ${pool} is smaller than one /${TENANT_PREFIX}`);
	}

	const digest = (purpose: string) => createHash('sha256').update(`kloud-tenant-${purpose}\u0000${tenant}`).digest();
	const names = digest('name').toString('hex');
	const vxlan = digest('vxlan').readUIntBE(0, 6);
	const slot = digest('subnet').readUIntBE(0, 6) % 2 ** (TENANT_PREFIX - prefix);
	return {
		tenant,
		bridge: `kt${names.slice(0, 8)}`,
		vxlanId: TENANT_VXLAN_BASE + (vxlan % TENANT_VXLAN_SPAN),
		subnet: `${formatIpv4(network + slot * 2 ** (32 - TENANT_PREFIX))}/${TENANT_PREFIX}`,
	};
}

/** Why `wanted` cannot be set up next to `others` on one host (same bridge, VXLAN id or subnet), or undefined. */
export function tenantCollision(wanted: TenantNetworkIdentity, others: readonly TenantNetworkIdentity[]): string | undefined {
	for (const other of others) {
		if (other.tenant === wanted.tenant) {
			continue;
		}

		const what = other.bridge === wanted.bridge ? `bridge ${wanted.bridge}` : other.vxlanId === wanted.vxlanId ? `VXLAN id ${wanted.vxlanId}` : other.subnet === wanted.subnet ? `subnet ${wanted.subnet}` : undefined;
		if (what !== undefined) {
			return `tenant "${wanted.tenant}" would share ${what} with another tenant on this host (a hash collision): it cannot have private VMs here while that tenant has`;
		}
	}

	return undefined;
}

/** One reservation: the VM's NIC and the address dnsmasq gives it, as dnsmasq's hosts files want it. */
export function dhcpHostLine(mac: string, ip: string): string {
	return `${mac},${ip}\n`;
}

/** Reads a reservation back (undefined for anything that is not one). */
export function parseDhcpHostLine(text: string): {readonly mac: string; readonly ip: string} | undefined {
	const match = /^([\da-f]{2}(?::[\da-f]{2}){5}),(\d+\.\d+\.\d+\.\d+)\s*$/.exec(text.trim());
	return match && parseIpv4(match[2]!) !== undefined ? {mac: match[1]!, ip: match[2]!} : undefined;
}

/**
 * The next free address of this host's slice, after `last` (round robin, so a just-freed address
 * is the last to be handed out again); undefined when every one is taken.
 */
export function allocateAddress(layout: PrivateLayout, taken: ReadonlySet<string>, last?: string): string | undefined {
	const start = parseIpv4(layout.dhcpStart)!;
	const end = parseIpv4(layout.dhcpEnd)!;
	const size = end - start + 1;
	const after = last === undefined ? undefined : parseIpv4(last);
	const first = after !== undefined && after >= start && after < end ? after + 1 - start : 0;
	for (let step = 0; step < size; step++) {
		const candidate = formatIpv4(start + ((first + step) % size));
		if (!taken.has(candidate)) {
			return candidate;
		}
	}

	return undefined;
}
