/**
 * The host side of VM networking: the private network (bridge, dnsmasq, NAT, VXLAN to the other
 * hosts), the public bridge, one TAP per VM, and where each VM's address is learned. It decides
 * when; `network.ts` builds the commands as data and `Runtime.run` runs them. Everything lives in
 * `netns` when the agent was given one, while the agent itself stays where it reaches the broker.
 */
import {mkdir, readFile, stat} from 'node:fs/promises';
import type {NetworkMode} from '../source/protocol/index.js';
import {
	dhcpReleaseCommand,
	dnsmasqArgs,
	dnsmasqCommand,
	fdbCommands,
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
	type HostCommand,
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
};

/** A peer's private-network announcement, from its heartbeats. */
export type Peer = {readonly hostId: string; readonly underlay: string; readonly slot: number | undefined};

/** What the host network needs to know of a VM. */
export type VmNic = {readonly id: string; readonly network: NetworkMode; readonly mac: string | null};

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
	#privateReady: Promise<void> | undefined;
	#isPrivateUp = false;
	#publicReady: Promise<void> | undefined;
	#publicAddresses = new Map<string, string>();
	#publicRefreshedAt = 0;
	#isRefreshing = false;
	/** Peers whose all-zero FDB entry is on the VXLAN device (undefined: not read yet). */
	#floodPeers: Set<string> | undefined;
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

	/** The private network's desired state. */
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

	/** Sets up (once; again after a failure) the bridge, NAT, VXLAN and dnsmasq of the private network. */
	async ensurePrivate(): Promise<void> {
		this.#privateReady ??= this.setUpPrivate().then(
			() => {
				this.#isPrivateUp = true;
			},
			(error: unknown) => {
				this.#privateReady = undefined;
				throw new NetworkSetupError(`cannot set up the private network on ${this.config.privateBridge}: ${(error as Error).message}`, {cause: error});
			},
		);
		return this.#privateReady;
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

	/** Creates VM `id`'s TAP on the bridge of `mode` (replacing a leftover of the same name). */
	async attach(id: string, mode: 'private' | 'public'): Promise<void> {
		if (mode === 'private') {
			await this.ensurePrivate();
		} else {
			await this.ensurePublic();
		}

		const {netns} = this.config;
		const bridge = mode === 'private' ? this.config.privateBridge : this.config.publicBridge!;
		const commands = tapCreateCommands({
			tap: id,
			bridge,
			owner: this.owner,
			// Frames from a 1500-byte guest would not fit the tunnel: the TAP tells the bridge so.
			...(mode === 'private' && this.config.underlay !== undefined ? {mtu: 1500 - VXLAN_OVERHEAD} : {}),
			...(netns === undefined ? {} : {netns}),
		});
		await this.exec(tapDeleteCommand(id, netns)).catch(() => {});
		try {
			for (const command of commands) {
				await this.exec(command);
			}
		} catch (error) {
			await this.exec(tapDeleteCommand(id, netns)).catch(() => {});
			throw new NetworkSetupError(`cannot create TAP ${id} on ${bridge}: ${(error as Error).message}`, {cause: error});
		}
	}

	/** Deletes a VM's TAP and frees its private lease. Never throws: the VM is gone either way. */
	async detach(vm: VmNic): Promise<void> {
		if (vm.network !== 'private' && vm.network !== 'public') {
			return;
		}

		const {netns} = this.config;
		// The lease may outlive this agent process (a VM that died while the agent was down): release it if the file has it.
		if (vm.network === 'private' && vm.mac !== null) {
			const address = (await this.privateLeases()).get(vm.mac);
			if (address !== undefined) {
				await this.exec(dhcpReleaseCommand({bridge: this.config.privateBridge, ip: address, mac: vm.mac, ...(netns === undefined ? {} : {netns})})).catch((error: unknown) => {
					this.#log.debug({err: error, vm: vm.id}, 'lease not released');
				});
			}
		}

		await this.exec(tapDeleteCommand(vm.id, netns)).then(
			() => this.#log.debug({vm: vm.id}, 'TAP deleted'),
			(error: unknown) => this.#log.debug({err: error, vm: vm.id}, 'no TAP to delete'),
		);
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

	/** Called at start-up with adopted VMs: a restarted agent checks its networks (and dnsmasq) are still there. */
	async resume(vms: readonly VmNic[]): Promise<void> {
		if (vms.some(vm => vm.network === 'private')) {
			await this.ensurePrivate().catch((error: unknown) => this.#log.warn({err: error}, 'private network not restored'));
		}

		if (vms.some(vm => vm.network === 'public')) {
			await this.ensurePublic().catch((error: unknown) => this.#log.warn({err: error}, 'public network not restored'));
		}
	}

	/** Each VM's IPv4 address, where known: private from dnsmasq's leases, public from snooped DHCP or the neighbour table. */
	async addresses(vms: readonly VmNic[]): Promise<Map<string, string>> {
		const found = new Map<string, string>();
		const hasPrivate = vms.some(vm => vm.network === 'private' && vm.mac !== null);
		const leases = hasPrivate ? await this.privateLeases() : new Map<string, string>();
		for (const vm of vms) {
			const address = vm.mac === null ? undefined : vm.network === 'private' ? leases.get(vm.mac) : vm.network === 'public' ? this.#publicAddresses.get(vm.mac) : undefined;
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
	 * Keeps one all-zero FDB entry per live peer on the VXLAN device, so broadcasts (ARP, DHCP fenced
	 * off) reach every host and learned unicast goes straight to the right one. A peer announcing
	 * this host's slot is left out, loudly: their DHCP ranges and gateways would collide.
	 */
	async syncPeers(peers: readonly Peer[]): Promise<void> {
		const {underlay, netns} = this.config;
		if (underlay === undefined || !this.#isPrivateUp || this.#isSyncing) {
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
			if (!this.#floodPeers) {
				const output = await this.exec(showFdbCommand(this.config.privateBridge, netns));
				this.#floodPeers = new Set(parseFloodPeers(output.stdout));
			}

			const present = this.#floodPeers;
			const commands = fdbCommands({bridge: this.config.privateBridge, wanted: [...wanted], present: [...present], ...(netns === undefined ? {} : {netns})});
			for (const command of commands) {
				await this.exec(command);
			}

			if (commands.length > 0) {
				this.#log.info({peers: [...wanted].sort()}, 'VXLAN peers');
			}

			this.#floodPeers = wanted;
		} catch (error) {
			this.#floodPeers = undefined;
			this.#log.warn({err: error}, 'could not update VXLAN peers');
		} finally {
			this.#isSyncing = false;
		}
	}

	// ---- internals ----

	private async setUpPrivate(): Promise<void> {
		const spec = this.privateSpec;
		const {netns} = this.config;
		const bridge = await this.link(spec.bridge);
		const bridgeAddresses = bridge ? parseAddresses((await this.exec(showAddressesCommand(spec.bridge, netns))).stdout) : [];
		const vxlan = await this.link(vxlanName(spec.bridge));
		for (const command of privateBridgeCommands(spec, {...(bridge ? {bridge} : {}), bridgeAddresses, ...(vxlan ? {vxlan} : {})})) {
			await this.exec(command);
		}

		await this.exec(ipForwardCommand(netns));
		await this.exec(nftApplyCommand(privateNftRuleset({bridge: spec.bridge, subnet: this.layout.subnet, hasVxlan: spec.underlay !== undefined}), netns));
		await this.ensureDnsmasq(spec);
		this.#floodPeers = undefined;
		this.#log.info(
			{bridge: spec.bridge, gateway: this.layout.gateway, dhcp: `${this.layout.dhcpStart}-${this.layout.dhcpEnd}`, underlay: spec.underlay ?? null, netns: netns ?? null},
			'private network ready',
		);
	}

	/** Keeps a running dnsmasq that serves exactly this spec; replaces one that serves another. */
	private async ensureDnsmasq(spec: PrivateNetworkSpec): Promise<void> {
		await mkdir(this.paths.dir, {recursive: true, mode: 0o700});
		const wanted = ['dnsmasq', ...dnsmasqArgs(spec)];
		const pid = await this.dnsmasqPid();
		if (pid !== undefined) {
			const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
			if (cmdline.join('\n') === wanted.join('\n')) {
				this.#log.debug({pid}, 'dnsmasq already serving');
				return;
			}

			this.#log.info({pid}, 'restarting dnsmasq with new settings');
			this.#runtime.signal(pid, 'SIGTERM');
			for (let waited = 0; this.#runtime.isAlive(pid) && waited < 3000; waited += 20) {
				await new Promise(resolve => setTimeout(resolve, 20));
			}
		}

		await this.exec(dnsmasqCommand(spec));
	}

	/** The pid of this agent's dnsmasq, if its pidfile names a live dnsmasq started with it. */
	private async dnsmasqPid(): Promise<number | undefined> {
		const text = await readFile(this.paths.pid, 'utf8').catch(() => '');
		const pid = Number(text.trim());
		if (!Number.isInteger(pid) || pid <= 0 || !this.#runtime.isAlive(pid)) {
			return undefined;
		}

		const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
		return cmdline.split('\0').includes(`--pid-file=${this.paths.pid}`) ? pid : undefined;
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

	private async privateLeases(): Promise<Map<string, string>> {
		return leasesByMac(parseLeases(await readFile(this.paths.leases, 'utf8').catch(() => '')));
	}

	private async link(name: string): Promise<LinkInfo | undefined> {
		const output = await this.exec(showLinkCommand(name, this.config.netns)).catch(() => undefined);
		return output ? parseLinks(output.stdout).find(link => link.name === name) : undefined;
	}

	private async exec(command: HostCommand): Promise<CommandOutput> {
		return this.#runtime.run(command.command, command.args, command.input === undefined ? {} : {input: command.input});
	}
}
