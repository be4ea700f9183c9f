/**
 * kloud's wire format: versioned JSON messages, validated with zod at every edge. Nothing from
 * `JSON.parse` travels further unchecked: callers get `{ok: true, value}` or `{ok: false, error}`.
 */
import {z} from 'zod';
import {NETWORK_MODES} from './network-modes.js';
import {RESTART_POLICIES} from './restart-policies.js';
import {PROTOCOL_VERSION} from './version.js';

/** Largest message body accepted, in bytes (user-data is capped well below this). */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** Most console bytes one request may ask for (the reply must stay under the message limit). */
export const MAX_CONSOLE_BYTES = 128 * 1024;

/** Console bytes returned when a request does not say. */
export const DEFAULT_CONSOLE_BYTES = 64 * 1024;

/** Largest user-data a start may carry, in UTF-8 bytes (so a start stays well under the message limit). */
export const MAX_USER_DATA_BYTES = 64 * 1024;

/** Most SSH public keys one start may carry, and the longest one in bytes (a 16384-bit RSA key is ≈ 2.8 KB). */
export const MAX_SSH_KEYS = 16;
export const MAX_SSH_KEY_BYTES = 8 * 1024;

/** The size of `text` in UTF-8 bytes. */
export function utf8ByteLength(text: string): number {
	return new TextEncoder().encode(text).byteLength;
}

/** Says why `userData` is refused (too large), or undefined when it is acceptable. */
export function checkUserDataSize(userData: string): string | undefined {
	const bytes = utf8ByteLength(userData);
	return bytes > MAX_USER_DATA_BYTES
		? `user-data is ${bytes} bytes, over the limit of ${MAX_USER_DATA_BYTES} bytes (64 KiB): keep it to a script that fetches the rest`
		: undefined;
}

// One OpenSSH public key line: optional options, a key type, base64 key material, an optional comment.
const SSH_KEY_PATTERN = /^(?:\S+ )?(?:ssh-[\w@.-]+|ecdsa-[\w@.-]+|sk-[\w@.-]+) AAAA[A-Za-z\d+/]+={0,3}(?: [^\u0000-\u001F\u007F]*)?$/;

export const userDataSchema = z.string().superRefine((userData, context) => {
	const error = checkUserDataSize(userData);
	if (error) {
		context.addIssue({code: 'custom', message: error});
	}
});

export const sshKeySchema = z.string().refine(key => utf8ByteLength(key) <= MAX_SSH_KEY_BYTES && SSH_KEY_PATTERN.test(key), {
	error: issue =>
		`invalid SSH public key ${JSON.stringify(String(issue.input).slice(0, 40))}${String(issue.input).length > 40 ? '…' : ''}: expected one line like "ssh-ed25519 AAAA… comment" (at most ${MAX_SSH_KEY_BYTES} bytes)`,
});

export const VM_ID_PATTERN = /^vm-[a-z]{8}$/;
const IMAGE_NAME_PATTERN = /^[a-zA-Z\d][\w.-]{0,63}$/;
const HOST_ID_PATTERN = /^[a-zA-Z\d][\w.-]{0,62}$/;

export const vmIdSchema = z
	.string()
	.regex(VM_ID_PATTERN, {error: issue => `invalid VM id ${JSON.stringify(issue.input)}: expected "vm-" and 8 lowercase letters`});

export const imageNameSchema = z.string().refine(name => IMAGE_NAME_PATTERN.test(name) && !name.includes('..'), {
	error: issue =>
		String(issue.input).includes('/') || String(issue.input).includes('..')
			? `invalid image name ${JSON.stringify(issue.input)}: give a plain image name, not a path`
			: `invalid image name ${JSON.stringify(issue.input)}: use 1-64 letters, digits, '.', '_' or '-'`,
});

export const hostIdSchema = z
	.string()
	.regex(HOST_ID_PATTERN, {error: issue => `invalid host id ${JSON.stringify(issue.input)}: use 1-63 letters, digits, '.', '_' or '-'`});

export {NETWORK_MODES, type NetworkMode} from './network-modes.js';
export const networkModeSchema = z.enum(NETWORK_MODES, {
	error: issue => `invalid network ${JSON.stringify(issue.input)}: expected one of ${NETWORK_MODES.join(', ')}`,
});

/** Hosts sharing one private network: its subnet is cut into this many DHCP slices, one per host. */
export const PRIVATE_NETWORK_SLOTS = 8;

const IPV4_PATTERN = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
export const ipv4Schema = z.string().regex(IPV4_PATTERN, {error: issue => `invalid IPv4 address ${JSON.stringify(issue.input)}`});

/**
 * A VM's lifecycle (README, "Lifecycle"): `starting` (created, or booted again, until QMP answers) →
 * `running` → `stopping` → `stopped` (disk kept; `vm.boot` runs it again); `crashed` (its process
 * ended unasked and its restart policy gave up or says no); `deleting` → `deleted` (only ever in the
 * reply to `vm.delete` and its event: a deleted VM is gone from every list).
 */
export const VM_STATES = ['starting', 'running', 'stopping', 'stopped', 'crashed', 'deleting', 'deleted'] as const;
export type VmState = (typeof VM_STATES)[number];

export {RESTART_POLICIES, type RestartPolicy} from './restart-policies.js';
export const restartPolicySchema = z.enum(RESTART_POLICIES, {
	error: issue => `invalid restart policy ${JSON.stringify(issue.input)}: expected one of ${RESTART_POLICIES.join(', ')}`,
});

/** The state a VM's owner asked for last: what the agent brings it back to after a crash or a host reboot. */
export const DESIRED_STATES = ['running', 'stopped'] as const;
export type DesiredState = (typeof DESIRED_STATES)[number];

/** Largest disk one VM may ask for (`--disk-size`), in MiB: 16 TiB. */
export const MAX_DISK_MB = 16 * 1024 * 1024;

/**
 * A VM's measured load (README, "Load"): its QEMU process's CPU time between the agent's last two
 * samples, as a share of the VM's vCPUs (100: every vCPU busy; QEMU's own threads can take it a
 * little past 100), and its resident memory (RSS) then. Absent until two samples were taken.
 */
export const vmLoadSchema = z.object({
	cpuPercent: z.number().nonnegative().max(100_000),
	rssBytes: z.number().int().nonnegative(),
	/** Epoch milliseconds of the later sample. */
	sampledAt: z.number().int().nonnegative(),
});
export type VmLoad = z.infer<typeof vmLoadSchema>;

/** What a live migration out is doing (README, "migrate"): copying the disk, moving the RAM, or handing the VM over. */
export const MIGRATION_PHASES = ['disk', 'ram', 'switching'] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

/**
 * A live migration out of the host that lists the VM, as that (the source) host reports it while
 * it runs: where to, which phase, how far that phase is (0-100, in coarse steps: README,
 * "Conditional rounds"), and when it began (epoch ms). Absent otherwise and from older agents.
 */
export const vmMigrationSchema = z.object({
	to: hostIdSchema,
	phase: z.enum(MIGRATION_PHASES),
	percent: z.number().min(0).max(100),
	startedAt: z.number().int().nonnegative(),
});
export type VmMigration = z.infer<typeof vmMigrationSchema>;

export const vmSchema = z.object({
	id: vmIdSchema,
	host: hostIdSchema,
	image: imageNameSchema,
	state: z.enum(VM_STATES),
	memoryMb: z.number().int().positive(),
	cpus: z.number().int().positive(),
	pid: z.number().int().positive().nullable(),
	/** Epoch milliseconds of the start request being carried out. */
	createdAt: z.number().int().nonnegative(),
	uptimeSeconds: z.number().nonnegative().nullable(),
	/** Guest addresses: the MAC of its NIC (null without one), the IPv4 address once its DHCP lease is seen. */
	ip: z.string().nullable(),
	mac: z.string().nullable(),
	/** How the VM is networked (absent from agents older than networking). */
	network: networkModeSchema.optional(),
	/** Set when state is "crashed": how the process ended, when known. */
	exit: z.string().nullable(),
	/** The tenant (RabbitMQ user) whose validated start made the VM; null when the start carried none. */
	owner: z.string().nullable().optional(),
	/** The client token of the start that made it: a start sent again with it gets this VM. */
	clientToken: z.string().nullable().optional(),
	/** What its owner asked for last (absent from agents older than the lifecycle). */
	desired: z.enum(DESIRED_STATES).optional(),
	/** Its restart policy (absent from agents older than the lifecycle). */
	restart: restartPolicySchema.optional(),
	/** Restarts the policy made since the VM last ran steadily, and how many it makes before it gives up. */
	restarts: z.object({count: z.number().int().nonnegative(), limit: z.number().int().nonnegative()}).optional(),
	/** Its disk: the overlay's virtual size, and the bytes it uses on the host (the overlay file alone, not its base). */
	disk: z.object({sizeBytes: z.number().int().nonnegative(), usedBytes: z.number().int().nonnegative()}).optional(),
	/** Its measured CPU and memory use, while it runs (absent from agents older than load metrics). */
	load: vmLoadSchema.optional(),
	/** Set by the source host while the VM migrates out; a VM listed by two hosts is the copy without it. */
	migration: vmMigrationSchema.optional(),
});
export type Vm = z.infer<typeof vmSchema>;

export const hostStatusSchema = z.object({
	id: hostIdSchema,
	vmCount: z.number().int().nonnegative(),
	maxVms: z.number().int().positive(),
	freeMemoryMb: z.number().int().nonnegative(),
	totalMemoryMb: z.number().int().nonnegative(),
	accel: z.enum(['kvm', 'tcg']),
	images: z.array(imageNameSchema),
	/** How often this host sends heartbeats; a host silent for 3 intervals is gone. */
	heartbeatMs: z.number().int().positive(),
	startedAt: z.number().int().nonnegative(),
	/** This host's VXLAN underlay address: peers send the private network's traffic for its VMs there. */
	underlay: ipv4Schema.optional(),
	/** Which slice of the shared private subnet this host's DHCP hands out: slices never overlap. */
	privateSlot: z.number().int().min(0).max(PRIVATE_NETWORK_SLOTS - 1).optional(),
	/** `host:port` of the broker node the agent is connected to (several with a cluster); absent from older agents. */
	broker: z.string().min(1).max(300).optional(),
	/** Cordoned (`kloud-tui cordon`): it takes no new VMs, started or migrated in (absent: not cordoned). */
	cordoned: z.boolean().optional(),
	/** Guest memory this host hands out in all (`--memory-budget`), and how much of it its VMs and starts under way hold. */
	memoryBudgetMb: z.number().int().nonnegative().optional(),
	memoryCommittedMb: z.number().int().nonnegative().optional(),
	/** vCPUs this host hands out in all (`--cpu-overcommit` × cores), and how many its VMs and starts under way hold. */
	cpuBudget: z.number().int().nonnegative().optional(),
	cpusCommitted: z.number().int().nonnegative().optional(),
});
export type HostStatus = z.infer<typeof hostStatusSchema>;

export const imageSchema = z.object({
	name: imageNameSchema,
	sizeBytes: z.number().int().nonnegative(),
});
export type Image = z.infer<typeof imageSchema>;

const envelope = {
	v: z.literal(PROTOCOL_VERSION),
	id: z.string().min(1).max(64),
	from: z.string().min(1).max(128),
	ts: z.number().int().nonnegative(),
};

const startBody = z.strictObject({
	image: imageNameSchema,
	host: hostIdSchema.optional(),
	memoryMb: z.number().int().min(16).max(1024 * 1024).optional(),
	cpus: z.number().int().min(1).max(256).optional(),
	/** Omitted: the agent's default (`--network-default`, `private` unless the operator says otherwise). */
	network: networkModeSchema.optional(),
	/** Like EC2's ClientToken: a retried start with the same token returns the same VM. */
	clientToken: z.string().min(1).max(64).optional(),
	/** Like EC2's user-data: handed to the guest in its NoCloud seed (`user-data`); ≤ 64 KiB. */
	userData: userDataSchema.optional(),
	/** OpenSSH public keys for the guest: `public-keys` in its NoCloud seed's `meta-data`. */
	sshKeys: z.array(sshKeySchema).max(MAX_SSH_KEYS, {error: `at most ${MAX_SSH_KEYS} SSH keys`}).optional(),
	/** Omitted: `on-failure`. */
	restart: restartPolicySchema.optional(),
	/** The disk's virtual size in MiB (never below the base image's); omitted: the base image's size. */
	diskMb: z.number().int().min(1).max(MAX_DISK_MB).optional(),
});
export type StartBody = z.infer<typeof startBody>;

const stopBody = z.strictObject({
	vmId: vmIdSchema,
	graceSeconds: z.number().min(0).max(3600).optional(),
});
export type StopBody = z.infer<typeof stopBody>;

const rebootBody = z.strictObject({
	vmId: vmIdSchema,
	/** `system_reset` (a hardware reset) instead of an ACPI reboot request the guest handles. */
	hard: z.boolean().optional(),
});
export type RebootBody = z.infer<typeof rebootBody>;

const deleteBody = z.strictObject({
	vmId: vmIdSchema,
	/** A running VM is stopped first: this long for a graceful power-off, then killed (default: 0, killed at once). */
	graceSeconds: z.number().min(0).max(3600).optional(),
});
export type DeleteBody = z.infer<typeof deleteBody>;

/** A host's VM list version (`HostSnapshot.vmsVersion`): opaque to the requester. */
export const vmsVersionSchema = z.string().regex(/^[\w-]{1,64}$/, {error: issue => `invalid VM list version ${JSON.stringify(issue.input)}`});

const listBody = z.strictObject({
	/**
	 * Only this VM: hosts answer with it or with no VMs, and the requester stops at the first host
	 * that has it (how the CLI finds a VM's owner without a full list round).
	 */
	vmId: vmIdSchema.optional(),
	/**
	 * The VM list version the requester holds for each host: a host whose list is still that one
	 * answers `vmsUnchanged` with no VMs, so a TUI's idle rounds carry (and check) almost nothing.
	 */
	known: z
		.record(hostIdSchema, vmsVersionSchema, {error: issue => (issue.code === 'invalid_key' ? `invalid host id ${JSON.stringify(issue.input)} in known` : undefined)})
		.optional(),
});
export type ListBody = z.infer<typeof listBody>;

/** Most input bytes one `vm.console.input` carries (a paste is split into several). */
export const MAX_CONSOLE_INPUT_BYTES = 4096;

/** A console session's id: 32 hex digits the agent draws at random (it is also a capability: keep it secret). */
export const consoleSessionSchema = z.string().regex(/^[\da-f]{32}$/, {error: issue => `invalid console session ${JSON.stringify(issue.input)}`});

/** Base64 text: console bytes travel as base64 (a guest writes any bytes, not only UTF-8). */
const base64Schema = z.string().regex(/^[A-Za-z\d+/]*={0,2}$/, {error: 'invalid base64 data'});

const consoleAttachBody = z.strictObject({
	vmId: vmIdSchema,
	/**
	 * Where the agent publishes this session's frames (default exchange): the viewer's own
	 * server-named queue (`amq.gen-…`, exclusive, bounded with `x-max-length-bytes` and drop-head).
	 */
	output: z.string().regex(/^amq\.gen-[\w-]{1,120}$/, {error: issue => `invalid console output queue ${JSON.stringify(issue.input)}: expected a server-named queue (amq.gen-…)`}),
	/** Take the writer's seat (the last to attach with write takes over); otherwise watch only. */
	write: z.boolean().optional(),
	/** How much recent output comes first (default 4 KiB): where the guest is. */
	tailBytes: z.number().int().min(0).max(64 * 1024).optional(),
});
export type ConsoleAttachBody = z.infer<typeof consoleAttachBody>;

const consoleInputBody = z.strictObject({
	session: consoleSessionSchema,
	/** Bytes for the guest (base64, ≤ 4 KiB decoded); omitted: a keepalive only. */
	data: base64Schema.max(Math.ceil(MAX_CONSOLE_INPUT_BYTES / 3) * 4).optional(),
});

/** A TCP connect to a VM's address from where its host reaches it (a group's `tcp:PORT` health check). */
const probeBody = z.strictObject({
	vmId: vmIdSchema,
	port: z.number().int().min(1).max(65_535),
	/** How long the connect may take (default 2000 ms). */
	timeoutMs: z.number().int().min(100).max(10_000).optional(),
});
export type ProbeBody = z.infer<typeof probeBody>;

/** The answer to `vm.probe`: whether the port took the connection, and in how long. */
export const probeResultSchema = z.object({
	vmId: vmIdSchema,
	host: hostIdSchema,
	/** The address connected to; null when the VM has none (no lease yet, or a `user`/`none` network). */
	address: z.string().nullable(),
	port: z.number().int().min(1).max(65_535),
	isOpen: z.boolean(),
	ms: z.number().nonnegative(),
	/** Why it is not open (refused, timed out, no address). */
	error: z.string().max(512).optional(),
});
export type ProbeResult = z.infer<typeof probeResultSchema>;

/** Live migration of a running VM to another host (README, "Live migration"); sent to the VM's host. */
const migrateBody = z.strictObject({
	vmId: vmIdSchema,
	/** The destination; omitted: the live host with the most free memory that has the VM's image. */
	to: hostIdSchema.optional(),
});
export type MigrateBody = z.infer<typeof migrateBody>;

/** What a destination needs to take a VM in: its record as the source keeps it, and its seed CD-ROM. */
export const migrationVmSchema = z.strictObject({
	id: vmIdSchema,
	image: imageNameSchema,
	memoryMb: z.number().int().positive(),
	cpus: z.number().int().positive(),
	createdAt: z.number().int().nonnegative(),
	startedAt: z.number().int().nonnegative().nullable(),
	clientToken: z.string().max(64).nullable(),
	owner: z.string().max(128).nullable(),
	network: networkModeSchema,
	mac: z.string().regex(/^[\da-f]{2}(?::[\da-f]{2}){5}$/).nullable(),
	restart: restartPolicySchema,
	/** The overlay's virtual size: the destination's overlay gets the same. */
	diskBytes: z.number().int().positive(),
	/**
	 * The sha256 of the base content the VM's overlay is on (`<images>/.bases/<sha>.qcow2`): the
	 * destination takes the VM in on that very content or refuses. Absent from older sources, and for
	 * VMs made before content-addressed bases: the destination uses its image's current content.
	 */
	baseSha256: z.string().regex(/^[\da-f]{64}$/).optional(),
	/** A private VM's address: the destination reserves the same one. */
	ip: ipv4Schema.optional(),
	/**
	 * The DHCP lease the source's dnsmasq gave for `ip` (when the guest has one): the destination's
	 * dnsmasq starts with it, so the VM is listed with its address at once and its renewal is a renewal.
	 */
	lease: z
		.strictObject({
			/** Epoch seconds (0: never ends), as dnsmasq's leases file says. */
			expires: z.number().int().nonnegative(),
			/** The client id the guest asked with (hex bytes, colon-separated), if any. */
			clientId: z
				.string()
				.regex(/^[\da-f]{2}(?::[\da-f]{2}){0,63}$/)
				.optional(),
		})
		.optional(),
});
export type MigrationVm = z.infer<typeof migrationVmSchema>;

/** Agent to agent: prepare an incoming QEMU (overlay, TAP, NBD export of the overlay) for a VM. */
const migratePrepareBody = z.strictObject({
	from: hostIdSchema,
	vm: migrationVmSchema,
	/** The seed ISO, gzip then base64 (mostly zeros: a few KiB). */
	seed: z.string().max(200 * 1024),
});

/** Where the source sends the disk (NBD) and the RAM (QEMU migration stream). */
export const migrationTargetSchema = z.object({
	host: hostIdSchema,
	address: ipv4Schema,
	nbdPort: z.number().int().min(1).max(65_535),
	exportName: z.string().min(1).max(64),
	migrationPort: z.number().int().min(1).max(65_535),
});
export type MigrationTarget = z.infer<typeof migrationTargetSchema>;

/** A finished migration: the VM on its new host, and QEMU's figures. */
export const migrationResultSchema = z.object({
	vm: vmSchema,
	from: hostIdSchema,
	/** QEMU's `total-time` (RAM) and `downtime`, and the whole request's time, in milliseconds. */
	totalMs: z.number().nonnegative(),
	downtimeMs: z.number().nonnegative(),
	ramMs: z.number().nonnegative(),
});
export type MigrationResult = z.infer<typeof migrationResultSchema>;

export const requestSchema = z.discriminatedUnion('type', [
	z.object({...envelope, type: z.literal('vm.start'), body: startBody}),
	z.object({...envelope, type: z.literal('vm.stop'), body: stopBody}),
	z.object({...envelope, type: z.literal('vm.kill'), body: z.strictObject({vmId: vmIdSchema})}),
	/** Boots a stopped or crashed VM again on its host: same id, MAC, disk and seed. */
	z.object({...envelope, type: z.literal('vm.boot'), body: z.strictObject({vmId: vmIdSchema})}),
	z.object({...envelope, type: z.literal('vm.reboot'), body: rebootBody}),
	z.object({...envelope, type: z.literal('vm.delete'), body: deleteBody}),
	z.object({...envelope, type: z.literal('vm.list'), body: listBody}),
	z.object({...envelope, type: z.literal('images.list'), body: z.strictObject({})}),
	z.object({
		...envelope,
		type: z.literal('vm.console'),
		body: z.strictObject({vmId: vmIdSchema, bytes: z.number().int().min(1).max(MAX_CONSOLE_BYTES).optional()}),
	}),
	/** Opens an interactive console session on the VM's owner host (see PROTOCOL.md, "Console sessions"). */
	z.object({...envelope, type: z.literal('vm.console.attach'), body: consoleAttachBody}),
	/** Input for the guest, or a keepalive (no data). Sent without a reply address it gets no reply. */
	z.object({...envelope, type: z.literal('vm.console.input'), body: consoleInputBody}),
	z.object({...envelope, type: z.literal('vm.console.detach'), body: z.strictObject({session: consoleSessionSchema})}),
	z.object({...envelope, type: z.literal('vm.migrate'), body: migrateBody}),
	/** A TCP connect to the VM's address and a port, from its host (owner or admins). */
	z.object({...envelope, type: z.literal('vm.probe'), body: probeBody}),
	/** Cordons (no new VMs: starts, migrations in) or uncordons a host; admins only. Answers its status. */
	z.object({...envelope, type: z.literal('host.cordon'), body: z.strictObject({cordoned: z.boolean()})}),
	/** Agent to agent (admins only): the destination's part of a migration. */
	z.object({...envelope, type: z.literal('vm.migrate.prepare'), body: migratePrepareBody}),
	/** Agent to agent: the RAM arrived, the VM runs here now: keep it. */
	z.object({...envelope, type: z.literal('vm.migrate.commit'), body: z.strictObject({vmId: vmIdSchema, from: hostIdSchema})}),
	/** Agent to agent: the migration failed: remove everything prepared for it. */
	z.object({...envelope, type: z.literal('vm.migrate.abort'), body: z.strictObject({vmId: vmIdSchema, from: hostIdSchema})}),
]);
export type Request = z.infer<typeof requestSchema>;
export type RequestType = Request['type'];
export const REQUEST_TYPES: readonly RequestType[] = [
	'vm.start', 'vm.stop', 'vm.kill', 'vm.boot', 'vm.reboot', 'vm.delete', 'vm.list', 'images.list', 'vm.console',
	'vm.console.attach', 'vm.console.input', 'vm.console.detach',
	'vm.migrate', 'vm.probe', 'host.cordon', 'vm.migrate.prepare', 'vm.migrate.commit', 'vm.migrate.abort',
];

export const hostSnapshotSchema = z
	.object({
		host: hostStatusSchema,
		vms: z.array(vmSchema),
		/** Hosts this agent has heard a heartbeat from lately: the requester waits for all of them. */
		roster: z.array(hostIdSchema),
		/** Names this list of VMs (everything but their uptime, which the requester can age itself). */
		vmsVersion: vmsVersionSchema.optional(),
		/** The list is still the one the request's `known` named: `vms` is empty, the requester keeps its copy. */
		vmsUnchanged: z.literal(true).optional(),
		/** With `vmsUnchanged`: each running VM's load now (load is left out of `vmsVersion`, it changes every sample). */
		loads: z.record(vmIdSchema, vmLoadSchema).optional(),
	})
	.refine(snapshot => !snapshot.vmsUnchanged || (snapshot.vms.length === 0 && snapshot.vmsVersion !== undefined), {
		error: 'an unchanged VM list carries its version and no VMs',
	});
export type HostSnapshot = z.infer<typeof hostSnapshotSchema>;

export const hostImagesSchema = z.object({host: hostIdSchema, images: z.array(imageSchema), roster: z.array(hostIdSchema)});
export type HostImages = z.infer<typeof hostImagesSchema>;

export const consoleTailSchema = z.object({
	vmId: vmIdSchema,
	host: hostIdSchema,
	/** The last bytes of the serial console, decoded as UTF-8. */
	data: z.string(),
	/** The size of the log kept (a capped log's two files together), so a reader knows how much was left out. */
	sizeBytes: z.number().int().nonnegative(),
});
export type ConsoleTail = z.infer<typeof consoleTailSchema>;

export const consoleAttachedSchema = z.object({
	vmId: vmIdSchema,
	host: hostIdSchema,
	session: consoleSessionSchema,
	/** Whether this session holds the writer's seat now. */
	isWriter: z.boolean(),
	/** How long the agent keeps a session without a keepalive or input from its viewer. */
	expiresAfterMs: z.number().int().positive(),
	/** Frames with a `seq` below this carry the recent output sent first (the tail), not new output. */
	tailFrames: z.number().int().nonnegative(),
});
export type ConsoleAttached = z.infer<typeof consoleAttachedSchema>;

/** The session is still open (the answer to an input or keepalive that asked for one). */
export const consoleAliveSchema = z.object({session: consoleSessionSchema, isWriter: z.boolean()});
export type ConsoleAlive = z.infer<typeof consoleAliveSchema>;

const frameEnvelope = {v: z.literal(PROTOCOL_VERSION), session: consoleSessionSchema, seq: z.number().int().nonnegative()};

/**
 * What an agent publishes to a console session's output queue, numbered from 0 per session: a gap
 * in `seq` means the broker dropped frames (the viewer read too slowly).
 */
export const consoleFrameSchema = z.discriminatedUnion('type', [
	z.object({
		...frameEnvelope,
		type: z.literal('console.output'),
		data: base64Schema,
		/** Bytes this session missed just before this frame because the agent could not send them. */
		dropped: z.number().int().positive().optional(),
	}),
	/** A line for the viewer from kloud itself (e.g. "another viewer took the writer's seat"). */
	z.object({...frameEnvelope, type: z.literal('console.notice'), text: z.string().max(1024), isWriter: z.boolean()}),
	/**
	 * The session is over (the VM stopped, the viewer was silent too long, it detached). `movedTo`:
	 * the VM was live-migrated and runs on that host now; the viewer may attach there again.
	 */
	z.object({...frameEnvelope, type: z.literal('console.end'), reason: z.string().max(1024), movedTo: hostIdSchema.optional()}),
]);
export type ConsoleFrame = z.infer<typeof consoleFrameSchema>;

/** What a successful reply carries, per request type. */
export const replyValueSchemas = {
	'vm.start': vmSchema,
	'vm.stop': vmSchema,
	'vm.kill': vmSchema,
	'vm.boot': vmSchema,
	'vm.reboot': vmSchema,
	/** The VM as it was, in state `deleted`. */
	'vm.delete': vmSchema,
	'vm.list': hostSnapshotSchema,
	'images.list': hostImagesSchema,
	'vm.console': consoleTailSchema,
	'vm.console.attach': consoleAttachedSchema,
	'vm.console.input': consoleAliveSchema,
	'vm.console.detach': z.object({session: consoleSessionSchema}),
	'vm.migrate': migrationResultSchema,
	'vm.probe': probeResultSchema,
	'host.cordon': hostStatusSchema,
	'vm.migrate.prepare': migrationTargetSchema,
	'vm.migrate.commit': vmSchema,
	/** The VM id that was removed (or was never there). */
	'vm.migrate.abort': z.object({vmId: vmIdSchema}),
} as const satisfies Record<RequestType, z.ZodType>;
export type ReplyValue<T extends RequestType> = z.infer<(typeof replyValueSchemas)[T]>;

export const ERROR_CODES = [
	'bad_request',
	'unsupported_version',
	'unknown_image',
	'unknown_vm',
	'no_capacity',
	'quota_exceeded',
	'start_failed',
	'stop_failed',
	/** The request does not fit the VM's state now (e.g. a reboot of a stopped VM): the reason says what does. */
	'invalid_state',
	'forbidden',
	/** The host holds as many of this sender's requests as it takes at once: try again shortly. */
	'busy',
	/** A live migration failed; the reason says where the VM runs now. */
	'migrate_failed',
	'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const replySchema = z.discriminatedUnion('ok', [
	z.object({...envelope, type: z.literal('reply'), re: z.string(), ok: z.literal(true), value: z.unknown()}),
	z.object({
		...envelope,
		type: z.literal('reply'),
		re: z.string(),
		ok: z.literal(false),
		code: z.enum(ERROR_CODES),
		reason: z.string(),
	}),
]);
export type Reply = z.infer<typeof replySchema>;

export const EVENT_TYPES = ['host.heartbeat', 'host.hello', 'host.down', 'vm.started', 'vm.stopped', 'vm.crashed', 'vm.rebooted', 'vm.deleted', 'request.handled'] as const;

/** The requests an agent reports in `request.handled` (those that change something). */
export const AUDITED_REQUESTS = ['vm.start', 'vm.stop', 'vm.kill', 'vm.boot', 'vm.reboot', 'vm.delete', 'vm.migrate', 'host.cordon'] as const satisfies readonly RequestType[];
export type AuditedRequest = (typeof AUDITED_REQUESTS)[number];

/**
 * An audit record: who (the broker-validated user id of the request; null when it carried none)
 * asked this host for what, and how it ended. A start no host had room for is reported by the
 * agent that answered it from the dead letters (`code: no_capacity`).
 */
export const requestHandledSchema = z.object({
	user: z.string().max(128).nullable(),
	/** The request's `from` as its sender wrote it (not vouched for: `kloud-tui@alice`, `kloud-controller@host-a`). */
	sender: z.string().max(128).optional(),
	request: z.enum(AUDITED_REQUESTS),
	vmId: vmIdSchema.optional(),
	/** The image of a start, the destination of a migration, `on`/`off` for a cordon. */
	detail: z.string().max(200).optional(),
	/** The group the VM is a member of (its client token says), when it is one. */
	group: z.string().max(64).optional(),
	ok: z.boolean(),
	code: z.enum(ERROR_CODES).optional(),
	reason: z.string().max(1000).optional(),
	durationMs: z.number().nonnegative(),
});
export type RequestHandled = z.infer<typeof requestHandledSchema>;

export const eventSchema = z.discriminatedUnion('type', [
	z.object({...envelope, type: z.literal('host.heartbeat'), body: hostStatusSchema}),
	/** Sent by an agent as it starts: peers answer with a heartbeat at once so rosters fill fast. */
	z.object({...envelope, type: z.literal('host.hello'), body: z.object({id: hostIdSchema})}),
	/** Sent by an agent that shuts down cleanly, so requesters stop waiting for it at once. */
	z.object({...envelope, type: z.literal('host.down'), body: z.object({id: hostIdSchema})}),
	z.object({...envelope, type: z.literal('vm.started'), body: z.object({vm: vmSchema})}),
	z.object({...envelope, type: z.literal('vm.stopped'), body: z.object({vm: vmSchema})}),
	z.object({...envelope, type: z.literal('vm.crashed'), body: z.object({vm: vmSchema})}),
	z.object({...envelope, type: z.literal('vm.rebooted'), body: z.object({vm: vmSchema})}),
	z.object({...envelope, type: z.literal('vm.deleted'), body: z.object({vm: vmSchema})}),
	/** An audit record of one request that changes something (routing key `request.handled.<host>`). */
	z.object({...envelope, type: z.literal('request.handled'), body: requestHandledSchema}),
]);
export type KloudEvent = z.infer<typeof eventSchema>;
export type EventType = KloudEvent['type'];
