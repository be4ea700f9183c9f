/**
 * The host side of VM networking: the private network (bridge, dnsmasq, NAT, VXLAN to the other
 * hosts), the public bridge, one TAP per VM, and where each VM's address is learned. It decides
 * when; `network.ts` builds the commands as data and `Runtime.run` runs them. Everything lives in
 * `netns` when the agent was given one, while the agent itself stays where it reaches the broker.
 *
 * With `tenants`, each tenant's private VMs get a private network of their own (`tenant-network.ts`):
 * made on the tenant's first private VM here, removed with its last. Every TAP is guarded
 * (`network-guard.ts`): its VM sends only from its own MAC and reserved address.
 */
import {mkdir, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import type {NetworkMode} from '../source/protocol/index.js';
import {guardRuleset, guardTableName, guardTeardown, type TapGuard} from './network-guard.js';
import {
	allocateAddress,
	dhcpHostLine,
	isTenantBridgeName,
	parseDhcpHostLine,
	tenantCollision,
	tenantNetworkIdentity,
	type TenantNetworkIdentity,
} from './tenant-network.js';
import {
	dhcpReleaseCommand,
	dnsmasqArgs,
	dnsmasqCommand,
	fdbCommands,
	ip,
	ipForwardCommand,
	leasesByMac,
	listTapsCommand,
	nftApplyCommand,
	ownedTaps,
	parseAddresses,
	parseFloodPeers,
	parseLeases,
	parseLinks,
	parseNeighbours,
	parseRoutes,
	parseSnoopedLeases,
	privateBridgeCommands,
	privateLayout,
	privateNetworkPaths,
	privateNftRuleset,
	privateNftTeardown,
	publicBridgeCommands,
	publicSnoopListCommand,
	publicSnoopRuleset,
	publicSnoopShowCommand,
	showAddressesCommand,
	showFdbCommand,
	showLinkCommand,
	showNeighboursCommand,
	showRoutesCommand,
	tapCreateCommands,
	tapDeleteCommand,
	tapOwnerMark,
	VXLAN_OVERHEAD,
	vxlanName,
	withLease,
	type HostCommand,
	type Lease,
	type LinkInfo,
	type PrivateLayout,
	type PrivateNetworkPaths,
	type PrivateNetworkSpec,
} from './network.js';
import type {CommandOutput, Runtime} from './runtime.js';

/** The operator's network settings (agent flags). */
export type HostNetworkConfig = {
	readonly stateRoot: string;
	/** Put bridges, TAPs, dnsmasq and QEMU in this network namespace (`ip netns add NAME` first). */
	readonly netns?: string;
	readonly privateBridge: string;
	readonly privateSubnet: string;
	readonly privateSlot: number;
	/** This host's address on the underlay network; set to join other hosts over VXLAN. */
	readonly underlay?: string;
	readonly vxlanId: number;
	readonly publicBridge?: string;
	/** Only with `publicBridge`: the interface the agent may enslave to a bridge it creates. */
	readonly uplink?: string;
	/** One private network per tenant (VM owner) instead of one shared by all. */
	readonly tenants?: boolean;
	/** The pool tenant subnets (/24 each) are taken from. */
	readonly tenantSubnets?: string;
};

/** A peer's private-network announcement, from its heartbeats. */
export type Peer = {readonly hostId: string; readonly underlay: string; readonly slot: number | undefined};

/** What the host network needs to know of a VM. */
export type VmNic = {readonly id: string; readonly network: NetworkMode; readonly mac: string | null; readonly owner?: string | null};

/** A network could not be set up (or a TAP made): the start fails with this reason. */
export class NetworkSetupError extends Error {
	override name = 'NetworkSetupError';
}

type Logger = {
	debug(object: object, message?: string): void;
	info(object: object, message?: string): void;
	warn(object: object, message?: string): void;
};

/** How often the public bridge's snooped leases are re-read while some public VM has no address. */
const PUBLIC_REFRESH_MS = 1000;
const PUBLIC_REFRESH_IDLE_MS = 15_000;

/** One private network on this host: the shared one (`--private-bridge`) or a tenant's. */
type PrivateNet = {
	readonly spec: PrivateNetworkSpec;
	/** Set for a tenant's network. */
	readonly identity?: TenantNetworkIdentity;
	ready?: Promise<void>;
	isUp: boolean;
	/** Peers whose all-zero FDB entry is on its VXLAN device (undefined: not read yet). */
	floodPeers?: Set<string>;
	/** The address reserved last: the next one starts after it. */
	lastAddress?: string;
};

/**
 * One agent's networks on its host (or in its `--netns`): set up lazily on the first VM that needs
 * them, found again after a restart, never torn down behind running VMs.
 */
export class HostNetwork {
	readonly config: HostNetworkConfig;
	/** This host's slice of the private subnet (throws at construction on a bad subnet or slot). */
	readonly layout: PrivateLayout;
	readonly owner: string;
	readonly paths: PrivateNetworkPaths;
	readonly #runtime: Runtime;
	readonly #log: Logger;
	/** Private networks by bridge name. */
	readonly #nets = new Map<string, PrivateNet>();
	/** What each VM's TAP may send, by VM id. */
	readonly #guards = new Map<string, TapGuard>();
	/** The VXLAN peers allowed through the guard. */
	#peerAddresses: string[] = [];
	/** Set-up, attach, detach and tear-down of networks run one at a time. */
	#queue: Promise<unknown> = Promise.resolve();
	#publicReady: Promise<void> | undefined;
	#publicAddresses = new Map<string, string>();
	#publicRefreshedAt = 0;
	#isRefreshing = false;
	#isSyncing = false;
	readonly #warnedConflicts = new Set<string>();

	constructor(config: HostNetworkConfig, runtime: Runtime, log: Logger) {
		this.config = config;
		this.layout = privateLayout(config.privateSubnet, config.privateSlot);
		this.owner = tapOwnerMark(config.stateRoot);
		this.paths = privateNetworkPaths(config.stateRoot);
		this.#runtime = runtime;
		this.#log = log;
	}

	/** Fails fast when the configured namespace does not exist. */
	async check(): Promise<void> {
		const {netns} = this.config;
		if (netns !== undefined && !(await stat(`/run/netns/${netns}`).catch(() => undefined))) {
			throw new NetworkSetupError(`network namespace ${netns} does not exist (create it with: ip netns add ${netns})`);
		}
	}

	/** The shared private network's desired state. */
	get privateSpec(): PrivateNetworkSpec {
		const {config} = this;
		return {
			bridge: config.privateBridge,
			layout: this.layout,
			owner: this.owner,
			paths: this.paths,
			...(config.underlay === undefined ? {} : {underlay: config.underlay, vxlanId: config.vxlanId}),
			...(config.netns === undefined ? {} : {netns: config.netns}),
		};
	}

	/** The private network of a VM owned by `owner`: its tenant's with `tenants`, else the shared one. */
	privateNetFor(owner: string | null | undefined): PrivateNet {
		const {config} = this;
		if (!config.tenants || owner === null || owner === undefined) {
			return this.netFromSpec(this.privateSpec);
		}

		const identity = tenantNetworkIdentity(owner, config.tenantSubnets);
		const known = this.#nets.get(identity.bridge);
		if (known?.identity?.tenant === owner) {
			return known;
		}

		const collision = tenantCollision(identity, [...this.#nets.values()].flatMap(net => (net.identity ? [net.identity] : [])));
		if (collision !== undefined) {
			throw new NetworkSetupError(collision);
		}

		return this.netFromSpec(
			{
				bridge: identity.bridge,
				layout: privateLayout(identity.subnet, config.privateSlot),
				owner: this.owner,
				paths: privateNetworkPaths(config.stateRoot, identity.bridge),
				...(config.underlay === undefined ? {} : {underlay: config.underlay, vxlanId: identity.vxlanId}),
				...(config.netns === undefined ? {} : {netns: config.netns}),
			},
			identity,
		);
	}

	/** Sets up (once; again after a failure) the bridge, NAT, VXLAN and dnsmasq of the shared private network. */
	async ensurePrivate(): Promise<void> {
		return this.serial(async () => this.ensureNet(this.privateNetFor(null)));
	}

	/** Makes sure the public bridge exists (creating it from the uplink only when configured to). */
	async ensurePublic(): Promise<void> {
		const bridge = this.config.publicBridge;
		if (bridge === undefined) {
			throw new NetworkSetupError('this host has no public network: start its agent with --public-bridge (and --uplink to let it build the bridge)');
		}

		this.#publicReady ??= this.setUpPublic(bridge).catch((error: unknown) => {
			this.#publicReady = undefined;
			throw new NetworkSetupError(`cannot set up the public bridge ${bridge}: ${(error as Error).message}`, {cause: error});
		});
		return this.#publicReady;
	}

	/**
	 * Creates VM `id`'s TAP on the bridge of `mode` (replacing a leftover of the same name) and
	 * guards it. A private VM gets its address reserved here (returned): dnsmasq hands out nothing
	 * else, and the guard lets the VM send from nothing else.
	 */
	async attach(
		id: string,
		mode: 'private' | 'public',
		nic: {readonly mac: string; readonly owner?: string | null; readonly ip?: string; readonly lease?: {readonly expires: number; readonly clientId?: string}},
	): Promise<{readonly ip?: string}> {
		return this.serial(async () => {
			let net: PrivateNet | undefined;
			if (mode === 'private') {
				net = this.privateNetFor(nic.owner);
				await this.ensureNet(net);
			} else {
				await this.ensurePublic();
			}

			const {netns} = this.config;
			const bridge = net ? net.spec.bridge : this.config.publicBridge!;
			const commands = tapCreateCommands({
				tap: id,
				bridge,
				owner: this.owner,
				// Frames from a 1500-byte guest would not fit the tunnel: the TAP tells the bridge so.
				...(mode === 'private' && this.config.underlay !== undefined ? {mtu: 1500 - VXLAN_OVERHEAD} : {}),
				...(netns === undefined ? {} : {netns}),
			});
			await this.exec(tapDeleteCommand(id, netns)).catch(() => {});
			let ip: string | undefined;
			try {
				ip = net ? await this.reserveAddress(net, id, nic.mac, nic.ip, nic.lease) : undefined;
				// Guarded before QEMU opens the TAP: no frame of the VM ever passes unchecked.
				this.#guards.set(id, {tap: id, mac: nic.mac, network: mode, ...(ip === undefined ? {} : {ip})});
				await this.applyGuard();
				for (const command of commands) {
					await this.exec(command);
				}
			} catch (error) {
				await this.exec(tapDeleteCommand(id, netns)).catch(() => {});
				this.#guards.delete(id);
				if (net) {
					await rm(join(net.spec.paths.hosts, id), {force: true});
				}

				throw new NetworkSetupError(`cannot create TAP ${id} on ${bridge}: ${(error as Error).message}`, {cause: error});
			}

			return ip === undefined ? {} : {ip};
		});
	}

	/** The DHCP lease this host's dnsmasq holds for a private VM's NIC, if any (the one ending last). */
	async leaseOf(vm: VmNic): Promise<Lease | undefined> {
		if (vm.network !== 'private' || vm.mac === null) {
			return undefined;
		}

		const net = this.privateNetFor(vm.owner);
		const leases = parseLeases(await readFile(net.spec.paths.leases, 'utf8').catch(() => '')).filter(lease => lease.mac === vm.mac);
		return leases.sort((a, b) => (a.expires === 0 ? Infinity : a.expires) - (b.expires === 0 ? Infinity : b.expires)).at(-1);
	}

	/** The private address reserved here for VM `id` (its guard's), if any. */
	reservedAddress(id: string): string | undefined {
		return this.#guards.get(id)?.ip;
	}

	/**
	 * Deletes a VM's TAP, its guard and its reservation, and frees its private lease; a tenant's
	 * network goes with its last VM. Never throws: the VM is gone either way.
	 */
	async detach(vm: VmNic): Promise<void> {
		if (vm.network !== 'private' && vm.network !== 'public') {
			return;
		}

		await this.serial(async () => {
			const {netns} = this.config;
			let net: PrivateNet | undefined;
			if (vm.network === 'private') {
				try {
					net = this.privateNetFor(vm.owner);
				} catch (error) {
					this.#log.warn({err: error, vm: vm.id}, 'no private network for this VM');
				}
			}

			// The lease may outlive this agent process (a VM that died while the agent was down): release it if the file has it.
			if (net && vm.mac !== null) {
				const address = (await this.leasesOf(net)).get(vm.mac);
				if (address !== undefined) {
					await this.exec(dhcpReleaseCommand({bridge: net.spec.bridge, ip: address, mac: vm.mac, ...(netns === undefined ? {} : {netns})})).catch((error: unknown) => {
						this.#log.debug({err: error, vm: vm.id}, 'lease not released');
					});
				}
			}

			await this.exec(tapDeleteCommand(vm.id, netns)).then(
				() => this.#log.debug({vm: vm.id}, 'TAP deleted'),
				(error: unknown) => this.#log.debug({err: error, vm: vm.id}, 'no TAP to delete'),
			);
			if (this.#guards.delete(vm.id)) {
				await this.applyGuard().catch((error: unknown) => this.#log.warn({err: error}, 'guard not updated'));
			}

			if (net) {
				await this.releaseReservation(net, vm.id);
				if (net.identity && net.isUp && (await this.reservations(net)).size === 0) {
					await this.tearDownNet(net.spec.bridge);
				}
			}
		});
	}

	/** Deletes this agent's `vm-*` TAPs whose VM is not in `keep`; returns their names. */
	async removeOrphanTaps(keep: ReadonlySet<string>): Promise<string[]> {
		const output = await this.exec(listTapsCommand(this.config.netns)).catch(() => undefined);
		if (!output) {
			return [];
		}

		const orphans = ownedTaps(parseLinks(output.stdout), this.owner).filter(tap => !keep.has(tap));
		for (const tap of orphans) {
			await this.exec(tapDeleteCommand(tap, this.config.netns)).catch((error: unknown) => {
				this.#log.warn({err: error, tap}, 'could not delete a leftover TAP');
			});
		}

		return orphans;
	}

	/**
	 * Called at start-up with the VMs that run: a restarted agent checks their networks (and
	 * dnsmasq) are still there and guards their TAPs again; reservations of VMs that no longer run,
	 * and tenant networks none of them needs, are removed.
	 */
	async resume(vms: readonly VmNic[]): Promise<void> {
		await this.serial(async () => {
			const needed = new Set<string>();
			for (const vm of vms.filter(entry => entry.network === 'private')) {
				try {
					const net = this.privateNetFor(vm.owner);
					needed.add(net.spec.bridge);
					await this.ensureNet(net);
					const reserved = (await this.reservations(net)).get(vm.id);
					if (vm.mac !== null) {
						this.#guards.set(vm.id, {tap: vm.id, mac: vm.mac, network: 'private', ...(reserved === undefined ? {} : {ip: reserved.ip})});
					}
				} catch (error) {
					this.#log.warn({err: error, vm: vm.id}, 'private network not restored');
				}
			}

			if (vms.some(vm => vm.network === 'public')) {
				await this.ensurePublic().catch((error: unknown) => this.#log.warn({err: error}, 'public network not restored'));
				for (const vm of vms.filter(entry => entry.network === 'public' && entry.mac !== null)) {
					this.#guards.set(vm.id, {tap: vm.id, mac: vm.mac!, network: 'public'});
				}
			}

			// Reservations of VMs that are gone; tenant networks with no VM left.
			const live = new Set(vms.map(vm => vm.id));
			for (const net of this.#nets.values()) {
				for (const id of (await this.reservations(net)).keys()) {
					if (!live.has(id)) {
						await rm(join(net.spec.paths.hosts, id), {force: true});
					}
				}
			}

			for (const bridge of await this.tenantBridgesHere()) {
				if (!needed.has(bridge)) {
					this.#log.info({bridge}, 'removing a tenant network no VM needs');
					await this.tearDownNet(bridge);
				}
			}

			if (this.#guards.size > 0 || [...this.#nets.values()].some(net => net.isUp)) {
				await this.applyGuard().catch((error: unknown) => this.#log.warn({err: error}, 'guard not restored'));
			} else {
				await this.exec(nftApplyCommand(guardTeardown(guardTableName(this.config.privateBridge)), this.config.netns)).catch(() => {});
			}
		});
	}

	/** Each VM's IPv4 address, where known: private from dnsmasq's leases, public from snooped DHCP or the neighbour table. */
	async addresses(vms: readonly VmNic[]): Promise<Map<string, string>> {
		const found = new Map<string, string>();
		// Each private network's leases file, read once.
		const leases = new Map<string, Promise<Map<string, string>>>();
		const privateLeases = (vm: VmNic) => {
			let net: PrivateNet;
			try {
				net = this.privateNetFor(vm.owner);
			} catch {
				return new Map<string, string>();
			}

			const read = leases.get(net.spec.bridge) ?? this.leasesOf(net);
			leases.set(net.spec.bridge, read);
			return read;
		};

		for (const vm of vms) {
			const address = vm.mac === null ? undefined : vm.network === 'private' ? (await privateLeases(vm)).get(vm.mac) : vm.network === 'public' ? this.#publicAddresses.get(vm.mac) : undefined;
			if (address !== undefined) {
				found.set(vm.id, address);
			}
		}

		return found;
	}

	/** Re-reads the public bridge's snooped leases and neighbours: often while a public VM lacks an address. */
	async refreshPublic(vms: readonly VmNic[]): Promise<void> {
		const publicVms = vms.filter(vm => vm.network === 'public' && vm.mac !== null);
		const bridge = this.config.publicBridge;
		if (publicVms.length === 0 || bridge === undefined || this.#isRefreshing) {
			return;
		}

		const isMissing = publicVms.some(vm => !this.#publicAddresses.has(vm.mac!));
		if (Date.now() - this.#publicRefreshedAt < (isMissing ? PUBLIC_REFRESH_MS : PUBLIC_REFRESH_IDLE_MS)) {
			return;
		}

		this.#isRefreshing = true;
		try {
			const addresses = new Map<string, string>();
			const neighbours = await this.exec(showNeighboursCommand(bridge, this.config.netns)).catch(() => undefined);
			for (const [mac, address] of parseNeighbours(neighbours?.stdout ?? '')) {
				addresses.set(mac, address);
			}

			// DHCP seen on the wire beats a neighbour entry, which may be old.
			const snooped = await this.exec(publicSnoopListCommand(bridge, this.config.netns)).catch(() => undefined);
			for (const [mac, address] of leasesByMac(parseSnoopedLeases(snooped?.stdout ?? ''))) {
				addresses.set(mac, address);
			}

			this.#publicAddresses = addresses;
			this.#publicRefreshedAt = Date.now();
		} finally {
			this.#isRefreshing = false;
		}
	}

	/**
	 * Keeps one all-zero FDB entry per live peer on each private network's VXLAN device, so
	 * broadcasts (ARP, DHCP fenced off) reach every host and learned unicast goes straight to the
	 * right one, and lets VXLAN in from those peers only. A peer announcing this host's slot is
	 * left out, loudly: their DHCP ranges and gateways would collide.
	 */
	async syncPeers(peers: readonly Peer[]): Promise<void> {
		const {underlay, netns} = this.config;
		if (underlay === undefined || this.#isSyncing || ![...this.#nets.values()].some(net => net.isUp)) {
			return;
		}

		const wanted = new Set<string>();
		for (const peer of peers) {
			if (peer.underlay === underlay) {
				continue;
			}

			if (peer.slot === this.layout.slot) {
				const key = `${peer.hostId}@${peer.underlay}`;
				if (!this.#warnedConflicts.has(key)) {
					this.#warnedConflicts.add(key);
					this.#log.warn({peer: peer.hostId, slot: peer.slot}, 'not joining a peer that uses this host\'s private slot: give each host its own --private-slot');
				}

				continue;
			}

			wanted.add(peer.underlay);
		}

		this.#isSyncing = true;
		try {
			await this.serial(async () => {
				let isChanged = false;
				for (const net of [...this.#nets.values()].filter(entry => entry.isUp)) {
					try {
						net.floodPeers ??= new Set(parseFloodPeers((await this.exec(showFdbCommand(net.spec.bridge, netns))).stdout));
						const commands = fdbCommands({bridge: net.spec.bridge, wanted: [...wanted], present: [...net.floodPeers], ...(netns === undefined ? {} : {netns})});
						for (const command of commands) {
							await this.exec(command);
						}

						isChanged ||= commands.length > 0;
						net.floodPeers = new Set(wanted);
					} catch (error) {
						net.floodPeers = undefined;
						this.#log.warn({err: error, bridge: net.spec.bridge}, 'could not update VXLAN peers');
					}
				}

				const addresses = [...wanted].sort();
				if (addresses.join(',') !== this.#peerAddresses.join(',')) {
					this.#peerAddresses = addresses;
					await this.applyGuard().catch((error: unknown) => this.#log.warn({err: error}, 'guard not updated'));
					isChanged = true;
				}

				if (isChanged) {
					this.#log.info({peers: addresses}, 'VXLAN peers');
				}
			});
		} finally {
			this.#isSyncing = false;
		}
	}

	// ---- internals ----

	/** Runs network changes one at a time (never call it from inside itself). */
	private async serial<T>(task: () => Promise<T>): Promise<T> {
		const run = this.#queue.then(task, task);
		this.#queue = run.catch(() => {});
		return run;
	}

	/** The one `PrivateNet` object for this spec's bridge. */
	private netFromSpec(spec: PrivateNetworkSpec, identity?: TenantNetworkIdentity): PrivateNet {
		const known = this.#nets.get(spec.bridge);
		if (known) {
			return known;
		}

		const net: PrivateNet = {spec, ...(identity ? {identity} : {}), isUp: false};
		this.#nets.set(spec.bridge, net);
		return net;
	}

	/** Sets up `net` once (again after a failure). */
	private async ensureNet(net: PrivateNet): Promise<void> {
		net.ready ??= this.setUpPrivate(net).then(
			() => {
				net.isUp = true;
			},
			(error: unknown) => {
				net.ready = undefined;
				net.isUp = false;
				throw new NetworkSetupError(`cannot set up the private network on ${net.spec.bridge}: ${(error as Error).message}`, {cause: error});
			},
		);
		return net.ready;
	}

	private async setUpPrivate(net: PrivateNet): Promise<void> {
		const {spec} = net;
		const {netns} = this.config;
		const bridge = await this.link(spec.bridge);
		const bridgeAddresses = bridge ? parseAddresses((await this.exec(showAddressesCommand(spec.bridge, netns))).stdout) : [];
		const vxlan = await this.link(vxlanName(spec.bridge));
		for (const command of privateBridgeCommands(spec, {...(bridge ? {bridge} : {}), bridgeAddresses, ...(vxlan ? {vxlan} : {})})) {
			await this.exec(command);
		}

		await this.exec(ipForwardCommand(netns));
		await this.exec(nftApplyCommand(privateNftRuleset({bridge: spec.bridge, subnet: spec.layout.subnet, hasVxlan: spec.underlay !== undefined}), netns));
		await this.ensureDnsmasq(net);
		net.floodPeers = undefined;
		// The guard knows every private bridge: the host answers guests on it DHCP and DNS only.
		net.isUp = true;
		await this.applyGuard();
		this.#log.info(
			{
				bridge: spec.bridge,
				tenant: net.identity?.tenant ?? null,
				gateway: spec.layout.gateway,
				dhcp: `${spec.layout.dhcpStart}-${spec.layout.dhcpEnd}`,
				vxlanId: spec.underlay === undefined ? null : (spec.vxlanId ?? null),
				underlay: spec.underlay ?? null,
				netns: netns ?? null,
			},
			'private network ready',
		);
	}

	/** Removes a tenant's network: dnsmasq, bridge, VXLAN device, nft tables, files. */
	private async tearDownNet(bridge: string): Promise<void> {
		const {netns} = this.config;
		const paths = privateNetworkPaths(this.config.stateRoot, bridge);
		const pid = await this.dnsmasqPid(paths);
		if (pid !== undefined) {
			this.#runtime.signal(pid, 'SIGTERM');
		}

		// Only a bridge this agent made (its alias): never an operator's or another agent's.
		const link = await this.link(bridge);
		if (link?.alias === this.owner) {
			await this.exec(tapDeleteCommand(vxlanName(bridge), netns)).catch(() => {});
			await this.exec(tapDeleteCommand(bridge, netns)).catch(() => {});
			await this.exec(nftApplyCommand(privateNftTeardown(bridge), netns)).catch(() => {});
		}

		await rm(paths.dir, {recursive: true, force: true});
		const net = this.#nets.get(bridge);
		this.#nets.delete(bridge);
		if (net?.isUp) {
			await this.applyGuard().catch((error: unknown) => this.#log.warn({err: error}, 'guard not updated'));
		}

		this.#log.info({bridge, tenant: net?.identity?.tenant ?? null}, 'tenant network removed');
	}

	/** Tenant bridges of this agent on the host, and tenant network directories in its state. */
	private async tenantBridgesHere(): Promise<Set<string>> {
		const found = new Set<string>();
		for (const entry of await readdir(this.paths.dir).catch(() => [] as string[])) {
			if (isTenantBridgeName(entry)) {
				found.add(entry);
			}
		}

		const output = await this.exec(ip(['-d', '-j', 'link', 'show', 'type', 'bridge'], this.config.netns)).catch(() => undefined);
		for (const link of parseLinks(output?.stdout ?? '')) {
			if (isTenantBridgeName(link.name) && link.alias === this.owner) {
				found.add(link.name);
			}
		}

		return found;
	}

	/** Replaces the guard tables with what `#guards`, the private bridges that are up and the peers say. */
	private async applyGuard(): Promise<void> {
		const ruleset = guardRuleset({
			table: guardTableName(this.config.privateBridge),
			taps: [...this.#guards.values()],
			bridges: [...this.#nets.values()].filter(net => net.isUp).map(net => net.spec.bridge),
			...(this.config.underlay === undefined ? {} : {peers: this.#peerAddresses}),
		});
		await this.exec(nftApplyCommand(ruleset, this.config.netns));
	}

	/** The reservations of `net`, by VM id (one `<mac>,<ip>` file each). */
	private async reservations(net: PrivateNet): Promise<Map<string, {readonly mac: string; readonly ip: string}>> {
		const found = new Map<string, {readonly mac: string; readonly ip: string}>();
		for (const entry of await readdir(net.spec.paths.hosts).catch(() => [] as string[])) {
			const reservation = parseDhcpHostLine(await readFile(join(net.spec.paths.hosts, entry), 'utf8').catch(() => ''));
			if (reservation) {
				found.set(entry, reservation);
			}
		}

		return found;
	}

	/**
	 * Reserves a free address of this host's slice for VM `id` (dnsmasq reads the new file as it
	 * appears). A VM migrated in asks for the address it has (`preferred`), with the lease its guest
	 * holds: dnsmasq restarts knowing that lease.
	 */
	private async reserveAddress(net: PrivateNet, id: string, mac: string, preferred?: string, lease?: {readonly expires: number; readonly clientId?: string}): Promise<string> {
		const reservations = await this.reservations(net);
		const leases = await this.leasesOf(net);
		const taken = new Set([...[...reservations.values()].map(entry => entry.ip), ...[...leases].filter(([leaseMac]) => leaseMac !== mac).map(([, address]) => address)]);
		// A VM migrated in keeps the address it has (any free one of the shared subnet, whichever host's slice).
		const sameSubnet = (address: string) => address.split('.').slice(0, 3).join('.') === net.spec.layout.dhcpStart.split('.').slice(0, 3).join('.');
		const address = preferred !== undefined && sameSubnet(preferred) && !taken.has(preferred) ? preferred : allocateAddress(net.spec.layout, taken, net.lastAddress);
		if (address === undefined) {
			throw new NetworkSetupError(`no free address left in ${net.spec.layout.dhcpStart}-${net.spec.layout.dhcpEnd} on ${net.spec.bridge}`);
		}

		await mkdir(net.spec.paths.hosts, {recursive: true, mode: 0o700});
		await writeFile(join(net.spec.paths.hosts, id), dhcpHostLine(mac, address));
		net.lastAddress = address;
		await this.ensureDnsmasq(net, address === preferred && lease !== undefined ? {mac, ip: address, ...lease} : undefined);
		return address;
	}

	/** Drops VM `id`'s reservation (and dnsmasq's, by restarting it with the ones left). */
	private async releaseReservation(net: PrivateNet, id: string): Promise<void> {
		const file = join(net.spec.paths.hosts, id);
		if (!(await stat(file).catch(() => undefined))) {
			return;
		}

		await rm(file, {force: true});
		if (net.isUp) {
			await this.ensureDnsmasq(net).catch((error: unknown) => this.#log.warn({err: error, bridge: net.spec.bridge}, 'dnsmasq not updated'));
		}
	}

	/**
	 * Keeps a running dnsmasq that serves exactly this network's spec and reservations; replaces one
	 * that serves another (a start or stop of a VM restarts it: a DHCP client in the middle of an
	 * exchange then retries; the leases file keeps every lease). With `lease` (a VM migrated in) it
	 * restarts in any case, and the lease is written to the leases file while no dnsmasq runs (one
	 * that runs keeps its leases in memory and would write over it).
	 */
	private async ensureDnsmasq(net: PrivateNet, lease?: Lease): Promise<void> {
		const {spec} = net;
		await mkdir(spec.paths.hosts, {recursive: true, mode: 0o700});
		const reservations = [...(await this.reservations(net)).values()];
		const wanted = ['dnsmasq', ...dnsmasqArgs(spec, reservations)];
		const pid = await this.dnsmasqPid(spec.paths);
		let isStopped = true;
		if (pid !== undefined) {
			const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
			if (cmdline.join('\n') === wanted.join('\n') && lease === undefined) {
				this.#log.debug({pid}, 'dnsmasq already serving');
				return;
			}

			this.#log.info({pid}, 'restarting dnsmasq with new settings');
			this.#runtime.signal(pid, 'SIGTERM');
			for (let waited = 0; this.#runtime.isAlive(pid) && waited < 3000; waited += 20) {
				await new Promise(resolve => setTimeout(resolve, 20));
			}

			isStopped = !this.#runtime.isAlive(pid);
		}

		if (lease && isStopped) {
			const text = await readFile(spec.paths.leases, 'utf8').catch(() => '');
			await writeFile(spec.paths.leases, withLease(text, lease), {mode: 0o644});
			this.#log.info({ip: lease.ip, mac: lease.mac}, 'dnsmasq takes over the lease of a VM migrated in');
		} else if (lease) {
			this.#log.warn({pid, ip: lease.ip}, 'dnsmasq did not stop: the lease of a VM migrated in is not carried over (its guest renews it)');
		}

		await this.exec(dnsmasqCommand(spec, reservations));
	}

	/** The pid of the dnsmasq whose pidfile is `paths.pid`, if it is a live dnsmasq started with it. */
	private async dnsmasqPid(paths: PrivateNetworkPaths): Promise<number | undefined> {
		const text = await readFile(paths.pid, 'utf8').catch(() => '');
		const pid = Number(text.trim());
		if (!Number.isInteger(pid) || pid <= 0 || !this.#runtime.isAlive(pid)) {
			return undefined;
		}

		const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
		return cmdline.split('\0').includes(`--pid-file=${paths.pid}`) ? pid : undefined;
	}

	private async setUpPublic(bridgeName: string): Promise<void> {
		const {netns, uplink} = this.config;
		const bridge = await this.link(bridgeName);
		const uplinkLink = !bridge && uplink !== undefined ? await this.link(uplink) : undefined;
		const uplinkAddresses = uplinkLink ? parseAddresses((await this.exec(showAddressesCommand(uplinkLink.name, netns))).stdout) : [];
		const uplinkRoutes = uplinkLink ? parseRoutes((await this.exec(showRoutesCommand(uplinkLink.name, netns))).stdout) : [];
		const commands = publicBridgeCommands(
			{bridge: bridgeName, ...(uplink === undefined ? {} : {uplink}), ...(netns === undefined ? {} : {netns})},
			{...(bridge ? {bridge} : {}), ...(uplinkLink ? {uplink: uplinkLink} : {}), uplinkAddresses, uplinkRoutes},
		);
		for (const command of commands) {
			await this.exec(command);
		}

		const hasSnoop = await this.exec(publicSnoopShowCommand(bridgeName, netns)).then(
			() => true,
			() => false,
		);
		if (!hasSnoop) {
			await this.exec(nftApplyCommand(publicSnoopRuleset(bridgeName), netns));
		}

		this.#log.info({bridge: bridgeName, created: commands.length > 0, uplink: uplink ?? null}, 'public bridge ready');
	}

	private async leasesOf(net: PrivateNet): Promise<Map<string, string>> {
		return leasesByMac(parseLeases(await readFile(net.spec.paths.leases, 'utf8').catch(() => '')));
	}

	private async link(name: string): Promise<LinkInfo | undefined> {
		const output = await this.exec(showLinkCommand(name, this.config.netns)).catch(() => undefined);
		return output ? parseLinks(output.stdout).find(link => link.name === name) : undefined;
	}

	private async exec(command: HostCommand): Promise<CommandOutput> {
		return this.#runtime.run(command.command, command.args, command.input === undefined ? {} : {input: command.input});
	}
}
