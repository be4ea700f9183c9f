#!/usr/bin/env -S node --max-semi-space-size=1 --lite-mode --no-expose-wasm
/**
 * `kloud-agent`: flags (with env fallbacks) → config → Agent; SIGTERM/SIGINT leave VMs running.
 * The shebang trades JIT speed the agent does not need for memory: 1 MB semi-spaces and V8's lite
 * mode (no optimizing compiler; it implies no WebAssembly, said explicitly to keep V8 quiet). RSS
 * with 50 VMs ≈ 90 → 68 MB; list and start latency unchanged within noise (bench/).
 */
import {hostname} from 'node:os';
import {resolve} from 'node:path';
import meow from 'meow';
import {pino} from 'pino';
import {brokerUrls, urlUser} from '../source/broker/url.js';
import {UsageError} from '../source/cli/args.js';
import {tlsOptions} from '../source/cli/connect-flags.js';
import {checkNamespace, DEFAULT_NAMESPACE, hostIdSchema, ipv4Schema, MAX_HEARTBEAT_MS, NETWORK_MODES, parseAgentUsers, type NetworkMode} from '../source/protocol/index.js';
import {Agent, DEFAULT_PRIVATE_BRIDGE, DEFAULT_PRIVATE_SUBNET, type AgentConfig} from './agent.js';
import {DEFAULT_CPU_OVERCOMMIT} from './capacity.js';
import {DEFAULT_CONSOLE_LOG_MAX_BYTES, DEFAULT_DNSMASQ_LOG_MAX_BYTES, logMaxBytes} from './log-cap.js';
import {RUN_AS_PATTERN} from './qemu-args.js';
import {quotaConfig, type QuotaConfig} from './quota.js';
import {tenantNameProblem} from './tenant-name.js';
import {DEFAULT_VXLAN_ID, isInterfaceName, isNetnsName, parseCidr, privateLayout, vxlanName} from './network.js';
import {isInCidr} from './underlay.js';
import {DEFAULT_TENANT_SUBNETS, tenantNetworkIdentity} from './tenant-network.js';
import {createRuntime} from './runtime.js';
import {runImageCommand} from './image/cli-image.js';
import {renderSystemdUnit} from './systemd-unit.js';
import {GroupController} from './controller.js';

if (process.argv[2] === 'image') {
	process.exit(await runImageCommand(process.argv.slice(3)));
}

if (process.argv[2] === 'systemd-unit') {
	// The flags are the agent's own, checked when the unit starts it (and by `systemd-analyze verify`).
	process.stdout.write(renderSystemdUnit({command: [process.execPath, resolve(process.argv[1] ?? 'kloud-agent')], flags: process.argv.slice(3)}));
	process.exit(0);
}

const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
const MIB = 1024 * 1024;

const cli = meow(
	`
	Usage
	  $ kloud-agent [options]
	  $ kloud-agent systemd-unit [options] > /etc/systemd/system/kloud-agent.service
	  $ kloud-agent image …

	Runs the VMs of one host on command from RabbitMQ. VMs outlive the agent:
	SIGTERM stops the agent only, and a restarted agent adopts its running VMs.

	Options (environment fallback in brackets)
	  --amqp URL[,URL…]     broker URL, or the nodes of a cluster (tried shuffled; on a drop
	                        the next) [KLOUD_AMQP_URL] (default ${DEFAULT_AMQP_URL})
	  --namespace NAME      name prefix of every exchange and queue [KLOUD_NAMESPACE] (default ${DEFAULT_NAMESPACE})
	  --host-id ID          this host's id [KLOUD_HOST_ID] (default: the hostname)
	  --images DIR          base images, <name>.qcow2 [KLOUD_IMAGES] (default /var/lib/kloud/images)
	  --state-dir DIR       one directory per VM [KLOUD_STATE_DIR] (default /var/lib/kloud/state)
	  --accel kvm|tcg       QEMU accelerator [KLOUD_ACCEL] (default tcg; use kvm where KVM works)
	  --max-vms N           most VMs this host runs at once [KLOUD_MAX_VMS] (default 16)
	  --memory MB           default guest memory (default 256)
	  --cpus N              default guest CPUs (default 1)
	  --grace SECONDS       graceful stop waits this long before killing (default 30)
	  --heartbeat SECONDS   kloud heartbeat period, at most 60 (default 5)
	  --amqp-heartbeat SECONDS  AMQP heartbeat: the broker drops a hung agent after ~3×
	                        (default 5; separate from --heartbeat)
	  --tutorial-compat     also serve the tutorial's vm-queue messages
	  --tutorial-queue NAME the tutorial's queue name (default vm-queue)
	  --log-level LEVEL     pino level (default info) [KLOUD_LOG_LEVEL]
	  --start-paused        start guests paused (-S): QEMU and QMP run, the guest CPU waits
	                        (benchmarks and tests that need many VMs)
	  --memory-budget MB    guest memory this host hands out in all [KLOUD_MEMORY_BUDGET]
	                        (default: total memory less 10 %, at least 1 GiB)
	  --console-log-max MiB each VM's console log is kept to its last MiB (default 1, ≥ 0.25)
	  --dnsmasq-log-max MiB the private network's dnsmasq log, likewise (default 4)
	  --cpu-overcommit RATIO  vCPUs handed out per host core (default ${DEFAULT_CPU_OVERCOMMIT})
	  --no-controller       do not stand for group controller (README, "Groups"); by default
	                        every agent stands and the broker elects one [KLOUD_CONTROLLER=0]

	Security (see the README's "Reliability and security")
	  --tenants             every request must carry its RabbitMQ user id; a tenant sees and
	                        acts on its own VMs only; needs a broker user other than guest [KLOUD_TENANTS=1]
	  --admins U1,U2        users who see and act on every VM (the agent's own user always does)
	  --agent-users U1,U2   RabbitMQ users whose events (heartbeats, host.down, VM events)
	                        count; others' are dropped [KLOUD_AGENT_USERS]
	                        (default: the agent's own user)
	  --quota T=SPEC        tenant T (a RabbitMQ user) may hold at most SPEC across the fleet,
	                        e.g. alice=vms:4,cpus:8,memory:2048 (repeatable; any of the three)
	  --quota-default SPEC  the quota of every tenant not named (default: none)
	  --runas USER          run QEMU as this unprivileged user (QEMU's -runas)
	  --ca FILE             CA certificate(s) to trust for amqps:// (PEM)
	  --cert FILE, --key FILE  client certificate and key for amqps:// (PEM)

	Networking (see the README's "Networking")
	  --network-default MODE  network of starts that do not name one: private, public, none
	                          or user [KLOUD_NETWORK_DEFAULT] (default private)
	  --netns NAME            put bridges, TAPs, dnsmasq and QEMU in this network namespace;
	                          the agent itself stays here, where it reaches the broker
	  --private-bridge NAME   the private network's bridge (default ${DEFAULT_PRIVATE_BRIDGE})
	  --private-subnet CIDR   the private subnet, the same on every host (default ${DEFAULT_PRIVATE_SUBNET})
	  --private-slot N        this host's eighth of the subnet for DHCP, unique per host (default 0)
	  --underlay ADDRESS      this host's address for VXLAN: joins the other hosts' private bridges
	  --underlay-cidr CIDR    peers' underlay addresses must fall in it, else they are ignored
	                          for VXLAN (default: the /24 around --underlay)
	  --vxlan-id N            VXLAN network id (default ${DEFAULT_VXLAN_ID})
	  --migration-address A   where this host's QEMUs take live migrations in (the disk over
	                          NBD and the RAM, straight from the other host's QEMU); default
	                          --underlay; without either the host takes no VM in
	  --migration-bandwidth N cap a live migration's RAM stream out of this host at N MiB/s
	  --cordoned              start cordoned: no new VMs (starts, migrations in) until
	                          \`kloud-tui uncordon\`
	  --tenant-subnets CIDR   with --tenants: the pool each tenant's private /24 is taken
	                          from, the same on every host (default ${DEFAULT_TENANT_SUBNETS})
	  --public-bridge NAME    the bridge to the LAN for public VMs (used as it is when it exists)
	  --uplink IFACE          let the agent create --public-bridge over this interface, moving
	                          its addresses and routes to the bridge
`,
	{
		importMeta: import.meta,
		flags: {
			amqp: {type: 'string', default: process.env.KLOUD_AMQP_URL ?? DEFAULT_AMQP_URL},
			namespace: {type: 'string', default: process.env.KLOUD_NAMESPACE ?? DEFAULT_NAMESPACE},
			hostId: {type: 'string', default: process.env.KLOUD_HOST_ID ?? hostname()},
			images: {type: 'string', default: process.env.KLOUD_IMAGES ?? '/var/lib/kloud/images'},
			stateDir: {type: 'string', default: process.env.KLOUD_STATE_DIR ?? '/var/lib/kloud/state'},
			accel: {type: 'string', default: process.env.KLOUD_ACCEL ?? 'tcg', choices: ['kvm', 'tcg']},
			maxVms: {type: 'number', default: Number(process.env.KLOUD_MAX_VMS ?? 16)},
			memory: {type: 'number', default: 256},
			cpus: {type: 'number', default: 1},
			grace: {type: 'number', default: 30},
			heartbeat: {type: 'number', default: 5},
			amqpHeartbeat: {type: 'number', default: 5},
			agentUsers: {type: 'string', default: process.env.KLOUD_AGENT_USERS ?? ''},
			underlayCidr: {type: 'string'},
			tutorialCompat: {type: 'boolean', default: false},
			tutorialQueue: {type: 'string', default: 'vm-queue'},
			logLevel: {type: 'string', default: process.env.KLOUD_LOG_LEVEL ?? 'info'},
			startPaused: {type: 'boolean', default: false},
			controller: {type: 'boolean', default: process.env.KLOUD_CONTROLLER !== '0'},
			memoryBudget: {type: 'number'},
			consoleLogMax: {type: 'number', default: DEFAULT_CONSOLE_LOG_MAX_BYTES / MIB},
			dnsmasqLogMax: {type: 'number', default: DEFAULT_DNSMASQ_LOG_MAX_BYTES / MIB},
			cpuOvercommit: {type: 'number', default: DEFAULT_CPU_OVERCOMMIT},
			quota: {type: 'string', isMultiple: true, default: []},
			quotaDefault: {type: 'string'},
			tenants: {type: 'boolean', default: process.env.KLOUD_TENANTS === '1'},
			admins: {type: 'string', default: ''},
			runas: {type: 'string'},
			ca: {type: 'string'},
			cert: {type: 'string'},
			key: {type: 'string'},
			networkDefault: {type: 'string', default: process.env.KLOUD_NETWORK_DEFAULT ?? 'private', choices: [...NETWORK_MODES]},
			netns: {type: 'string'},
			privateBridge: {type: 'string', default: DEFAULT_PRIVATE_BRIDGE},
			privateSubnet: {type: 'string', default: DEFAULT_PRIVATE_SUBNET},
			privateSlot: {type: 'number', default: 0},
			underlay: {type: 'string'},
			migrationAddress: {type: 'string'},
			cordoned: {type: 'boolean', default: false},
			migrationBandwidth: {type: 'number'},
			vxlanId: {type: 'number', default: DEFAULT_VXLAN_ID},
			tenantSubnets: {type: 'string', default: DEFAULT_TENANT_SUBNETS},
			publicBridge: {type: 'string'},
			uplink: {type: 'string'},
		},
	},
);

function fail(message: string): never {
	process.stderr.write(`kloud-agent: ${message}\n`);
	process.exit(2);
}

const {flags} = cli;
// meow renames the process after the package's first bin (kloud-tui): say what this one is in ps.
process.title = `kloud-agent --host-id ${flags.hostId} --namespace ${flags.namespace}`;
const namespaceError = checkNamespace(flags.namespace);
if (namespaceError) {
	fail(namespaceError);
}

if (!hostIdSchema.safeParse(flags.hostId).success) {
	fail(`invalid --host-id "${flags.hostId}": use 1-63 letters, digits, '.', '_' or '-'`);
}

for (const [name, value, min] of [
	['--max-vms', flags.maxVms, 1],
	['--memory', flags.memory, 16],
	['--cpus', flags.cpus, 1],
	['--heartbeat', flags.heartbeat, 0.1],
	['--amqp-heartbeat', flags.amqpHeartbeat, 1],
	['--grace', flags.grace, 0],
	['--cpu-overcommit', flags.cpuOvercommit, 0.1],
] as const) {
	if (!Number.isFinite(value) || value < min) {
		fail(`invalid ${name} ${value}: must be a number ≥ ${min}`);
	}
}

if (flags.heartbeat * 1000 > MAX_HEARTBEAT_MS) {
	fail(`invalid --heartbeat ${flags.heartbeat}: at most ${MAX_HEARTBEAT_MS / 1000} s (peers forget a host silent for 2.5 × that)`);
}

const memoryBudget = flags.memoryBudget ?? (process.env.KLOUD_MEMORY_BUDGET === undefined ? undefined : Number(process.env.KLOUD_MEMORY_BUDGET));
if (memoryBudget !== undefined && (!Number.isFinite(memoryBudget) || memoryBudget < 16)) {
	fail(`invalid --memory-budget ${memoryBudget}: must be a number of MB ≥ 16`);
}

const consoleLogMax = logMaxBytes('--console-log-max', flags.consoleLogMax);
const dnsmasqLogMax = logMaxBytes('--dnsmasq-log-max', flags.dnsmasqLogMax);
for (const checked of [consoleLogMax, dnsmasqLogMax]) {
	if (!checked.ok) {
		fail(checked.reason);
	}
}

if (flags.tenants && flags.tutorialCompat) {
	fail('--tutorial-compat cannot go with --tenants: the tutorial\'s messages carry no user');
}

// guest/guest is every broker's well-known login with every right: whoever reaches the broker
// (a local process, a guest through a leak) would be an agent, and agents are the admins.
if (flags.tenants && urlUser(flags.amqp) === 'guest') {
	fail('--tenants needs a broker user of the agents\' own, not "guest" (the well-known default login, with every right): create one as the README\'s recipe shows ("Tenants: the RabbitMQ permission recipe") and give it with --amqp or KLOUD_AMQP_URL (amqp://USER:PASSWORD@HOST)');
}

if (flags.runas !== undefined && !RUN_AS_PATTERN.test(flags.runas)) {
	fail(`invalid --runas "${flags.runas}": a plain login name`);
}

let quota: QuotaConfig | undefined;
try {
	quota = quotaConfig(flags.quota, flags.quotaDefault);
} catch (error) {
	fail((error as Error).message);
}

const admins = flags.admins.split(',').map(name => name.trim()).filter(name => name !== '');
if (flags.tenants) {
	// Their VMs' events are routed by owner too: a name the recipe cannot express would leak them.
	for (const [what, name] of [...admins.map(name => ['--admins', name] as const), ['the --amqp user', urlUser(flags.amqp)] as const]) {
		const problem = tenantNameProblem(name);
		if (problem) {
			fail(`${what}: ${problem}`);
		}
	}
}

let tls: ReturnType<typeof tlsOptions>;
try {
	brokerUrls(flags.amqp);
	tls = tlsOptions(flags);
} catch (error) {
	fail(error instanceof UsageError ? error.message : `--amqp: ${(error as Error).message}`);
}

if (flags.netns !== undefined && !isNetnsName(flags.netns)) {
	fail(`invalid --netns "${flags.netns}": use letters, digits, '.', '_' or '-'`);
}

for (const [name, value] of [
	['--private-bridge', flags.privateBridge],
	['--public-bridge', flags.publicBridge],
	['--uplink', flags.uplink],
] as const) {
	if (value !== undefined && !isInterfaceName(value)) {
		fail(`invalid ${name} "${value}": an interface name of 1-15 letters, digits, '.', '_' or '-'`);
	}
}

if (!isInterfaceName(vxlanName(flags.privateBridge))) {
	fail(`--private-bridge "${flags.privateBridge}" is too long: its VXLAN device ${vxlanName(flags.privateBridge)} must fit 15 characters`);
}

if (flags.uplink !== undefined && flags.publicBridge === undefined) {
	fail('--uplink needs --public-bridge (the bridge the agent may build over it)');
}

if (flags.underlay !== undefined && !ipv4Schema.safeParse(flags.underlay).success) {
	fail(`invalid --underlay "${flags.underlay}": an IPv4 address of this host`);
}

if (flags.migrationAddress !== undefined && !ipv4Schema.safeParse(flags.migrationAddress).success) {
	fail(`invalid --migration-address "${flags.migrationAddress}": an IPv4 address of this host`);
}

if (flags.migrationBandwidth !== undefined && !(flags.migrationBandwidth > 0)) {
	fail(`invalid --migration-bandwidth ${flags.migrationBandwidth}: a number of MiB/s > 0`);
}

if (flags.underlayCidr !== undefined) {
	try {
		parseCidr(flags.underlayCidr);
	} catch (error) {
		fail((error as Error).message.replace(/^invalid subnet/, 'invalid --underlay-cidr'));
	}

	if (flags.underlay !== undefined && !isInCidr(flags.underlay, flags.underlayCidr)) {
		fail(`--underlay ${flags.underlay} is not in --underlay-cidr ${flags.underlayCidr}`);
	}
}

if (!Number.isInteger(flags.vxlanId) || flags.vxlanId < 1 || flags.vxlanId > 16_777_215) {
	fail(`invalid --vxlan-id ${flags.vxlanId}: a whole number 1 … 16777215`);
}

try {
	privateLayout(flags.privateSubnet, flags.privateSlot);
} catch (error) {
	fail((error as Error).message.replace(/^invalid subnet/, 'invalid --private-subnet').replace(/^invalid private slot/, 'invalid --private-slot'));
}

try {
	tenantNetworkIdentity('check', flags.tenantSubnets);
} catch (error) {
	fail(`invalid --tenant-subnets: ${(error as Error).message}`);
}

const config: AgentConfig = {
	amqpUrl: flags.amqp,
	namespace: flags.namespace,
	hostId: flags.hostId,
	imagesDir: resolve(flags.images),
	stateDir: resolve(flags.stateDir),
	accel: flags.accel as 'kvm' | 'tcg',
	maxVms: Math.floor(flags.maxVms),
	defaultMemoryMb: Math.floor(flags.memory),
	defaultCpus: Math.floor(flags.cpus),
	graceSeconds: flags.grace,
	heartbeatSeconds: flags.heartbeat,
	amqpHeartbeatSeconds: Math.round(flags.amqpHeartbeat),
	agentUsers: parseAgentUsers(flags.agentUsers, urlUser(flags.amqp)),
	...(flags.underlayCidr === undefined ? {} : {underlayCidr: flags.underlayCidr}),
	tutorialQueue: flags.tutorialCompat ? flags.tutorialQueue : undefined,
	startPaused: flags.startPaused,
	...(memoryBudget === undefined ? {} : {memoryBudgetMb: Math.floor(memoryBudget)}),
	cpuOvercommit: flags.cpuOvercommit,
	...(quota === undefined ? {} : {quota}),
	tenants: flags.tenants,
	admins,
	...(consoleLogMax.ok ? {consoleLogMaxBytes: consoleLogMax.bytes} : {}),
	...(dnsmasqLogMax.ok ? {dnsmasqLogMaxBytes: dnsmasqLogMax.bytes} : {}),
	...(flags.runas === undefined ? {} : {runAs: flags.runas}),
	...(tls ? {tls} : {}),
	networkDefault: flags.networkDefault as NetworkMode,
	...(flags.migrationAddress === undefined ? {} : {migrationAddress: flags.migrationAddress}),
	...(flags.cordoned ? {cordoned: true} : {}),
	...(flags.migrationBandwidth === undefined ? {} : {migrationBandwidthMiBps: flags.migrationBandwidth}),
	network: {
		privateBridge: flags.privateBridge,
		privateSubnet: flags.privateSubnet,
		privateSlot: flags.privateSlot,
		vxlanId: flags.vxlanId,
		tenantSubnets: flags.tenantSubnets,
		...(flags.netns === undefined ? {} : {netns: flags.netns}),
		...(flags.underlay === undefined ? {} : {underlay: flags.underlay}),
		...(flags.publicBridge === undefined ? {} : {publicBridge: flags.publicBridge}),
		...(flags.uplink === undefined ? {} : {uplink: flags.uplink}),
	},
};

const log = pino({level: flags.logLevel, base: {agent: flags.hostId}});
// Everything the agent and its children (qemu-img, QEMU, genisoimage) create in the state dir,
// overlays, consoles, QMP sockets, seeds, is for root's eyes only: 0600 files, 0700 directories.
process.umask(0o077);

let agent: Agent;
try {
	agent = await Agent.start(config, createRuntime(), log);
} catch (error) {
	fail((error as Error).message);
}

let controller: GroupController | undefined;
if (flags.controller) {
	try {
		controller = await GroupController.start({
			url: config.amqpUrl,
			namespace: config.namespace,
			hostId: config.hostId,
			log,
			...(config.agentUsers === undefined ? {} : {agentUsers: [...config.agentUsers]}),
			...(config.tenants ? {tenants: {admins}} : {}),
			...(config.tls === undefined ? {} : {tls: config.tls}),
		});
	} catch (error) {
		log.error({err: error}, 'could not stand for group controller');
	}
}

let isStopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
	process.on(signal, () => {
		if (isStopping) {
			return;
		}

		isStopping = true;
		log.info({signal}, 'stopping the agent; VMs keep running');
		void Promise.all([agent.shutdown(), controller?.stop()]).finally(() => process.exit(0));
	});
}
