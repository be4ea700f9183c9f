/**
 * How a VM is networked: `private` (the host's NAT bridge with DHCP, joined across hosts by VXLAN),
 * `public` (the operator's bridge to the LAN), `user` (QEMU user-mode networking, no root needed)
 * or `none` (no NIC). A file of its own, without zod: the TUI's first frame needs the list.
 */
export const NETWORK_MODES = ['private', 'public', 'none', 'user'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];
