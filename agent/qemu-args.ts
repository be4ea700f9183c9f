/**
 * Pure QEMU spec → argv builder. The argv is handed to the binary as an array, never through a
 * shell, and every resource carries the VM id so a restarted agent can find its VMs again.
 */
import {Buffer} from 'node:buffer';
import {isAbsolute} from 'node:path';
import {VM_ID_PATTERN} from '../source/protocol/messages.js';
import type {VmPaths} from './vm-paths.js';

/** The QEMU system emulator the agent runs. */
export const QEMU_BINARY = 'qemu-system-x86_64';

/** Smallest guest memory accepted, in MiB (matches the protocol's lower bound). */
export const MIN_MEMORY_MB = 16;

/** Longest unix socket path the kernel accepts, in bytes (`sun_path` is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Everything needed to start one VM's QEMU process. */
export type QemuSpec = {
	readonly id: string;
	readonly paths: VmPaths;
	readonly memoryMb: number;
	readonly cpus: number;
	/** `kvm` only where it has been probed to work: on these hosts it opens and then hangs. */
	readonly accel: 'kvm' | 'tcg';
	/** The VM's one NIC (virtio): on a TAP the agent made and bridged, or QEMU's user-mode network. None without. */
	readonly nic?: NicSpec;
	/** `-S`: QEMU starts and answers QMP with the guest CPU stopped (cheap VMs for benchmarks). */
	readonly isPaused?: boolean;
	/** `-incoming defer`: QEMU waits for a live migration's state (QMP `migrate-incoming` says from where). */
	readonly isIncoming?: boolean;
	/** Attach `paths.seed` (the NoCloud seed ISO) as a read-only CD-ROM. */
	readonly hasSeed?: boolean;
	/**
	 * `-runas USER`: QEMU opens its disk, sockets and logs as root, then drops to this unprivileged
	 * user before the guest runs.
	 */
	readonly runAs?: string;
};

/** User names `-runas` accepts here: a plain POSIX login name (QEMU looks it up; no commas, no paths). */
export const RUN_AS_PATTERN = /^[a-z_][\w-]{0,31}$/;

/** A virtio NIC: `tap` attaches to an existing TAP by name; `user` is QEMU's own NAT (no root needed). */
export type NicSpec = {readonly kind: 'tap'; readonly ifname: string; readonly mac: string} | {readonly kind: 'user'; readonly mac: string};

/** Thrown by `qemuArgs` for a spec QEMU would refuse or misread. */
export class QemuSpecError extends Error {
	override name = 'QemuSpecError';
}

/** The argv (without the binary name) that runs `spec` as a headless, detached-friendly QEMU. */
export function qemuArgs(spec: QemuSpec): string[] {
	validate(spec);
	const {id, paths} = spec;
	return [
		// `process=` sets the kernel's comm (≤ 15 chars) to the bare id: that is what discovery matches.
		'-name',
		`qemu-${id},process=${id}`,
		// No default NIC, CD-ROM, VGA or monitor: each of them slows or clutters a headless guest.
		'-nodefaults',
		'-no-user-config',
		'-machine',
		'q35',
		'-accel',
		// A smaller translation cache trims a booted TCG guest's RSS by about 15 %.
		spec.accel === 'tcg' ? 'tcg,tb-size=32' : 'kvm',
		'-m',
		String(spec.memoryMb),
		'-smp',
		String(spec.cpus),
		// cache=writeback (QEMU's default, said here on purpose): writes go through the host's page
		// cache, and virtio-blk tells the guest the disk has a volatile write cache, so the guest's
		// flushes (sync, fsync, journal commits) reach QEMU, which fdatasyncs the overlay before it
		// answers. A write the guest flushed survives a SIGKILL of QEMU (it is in the host's page
		// cache already) and a host power loss (it is on the host's disk). cache=none would add
		// O_DIRECT for no extra safety; directsync or writethrough would sync every write.
		'-drive',
		`file=${paths.disk},format=qcow2,if=virtio,cache=writeback`,
		'-qmp',
		`unix:${paths.qmp},server=on,wait=off`,
		// A second QEMU on the same pidfile refuses to start: a free guard against double starts.
		'-pidfile',
		paths.pid,
		// The serial port is a unix socket the agent holds: it streams it to console sessions over the
		// broker, writes the writer's input into it, and appends what the guest says to the console
		// log itself. Not QEMU's `logfile=`: QEMU 7.2 logs a byte twice when its write to a busy
		// socket is retried (measured: "FLOOD 1411" for 1410 while the reader stalls), the stream is
		// right. `wait=off`: QEMU does not wait for the agent; output while no one holds the socket
		// (the agent restarting) is neither logged nor kept, as on a real serial line.
		'-chardev',
		`socket,id=console,path=${paths.consoleSocket},server=on,wait=off`,
		'-serial',
		'chardev:console',
		'-display',
		'none',
		'-vga',
		'none',
		// A virtio RNG fed by QEMU's own getrandom(): without it a TCG guest's kernel waits seconds for
		// its random pool (measured with the demo guest: its SSH server's key waited ≈ 6 s for it).
		'-device',
		'virtio-rng-pci',
		...(spec.hasSeed ? seedArgs(paths.seed) : []),
		...nicArgs(spec.nic),
		...(spec.isPaused ? ['-S'] : []),
		...(spec.isIncoming ? ['-incoming', 'defer'] : []),
		...sandboxArgs(spec.runAs),
	];
}

/**
 * seccomp: no obsolete system calls, no spawning processes, no changing scheduling or resource
 * limits, and no set*uid except to drop to `-runas`'s user (QEMU does that itself after start-up,
 * so `elevateprivileges=deny` would kill it: measured with QEMU 7.2).
 */
function sandboxArgs(runAs: string | undefined): string[] {
	return [
		'-sandbox',
		`on,obsolete=deny,elevateprivileges=${runAs === undefined ? 'deny' : 'allow'},spawn=deny,resourcecontrol=deny`,
		...(runAs === undefined ? [] : ['-runas', runAs]),
	];
}

function seedArgs(seedPath: string): string[] {
	// On q35, `if=ide` lands on the built-in ICH9 AHCI controller (the guest loads `ahci`): no extra
	// device is needed, and the CD-ROM is found by its `cidata` label whichever port it is on.
	return ['-drive', `file=${seedPath},format=raw,if=ide,media=cdrom,readonly=on`];
}

function nicArgs(nic: NicSpec | undefined): string[] {
	if (!nic) {
		return [];
	}

	// script=no: the agent made and bridged the TAP already; QEMU must not run /etc/qemu-ifup.
	// restrict=on: slirp answers the guest's DHCP and refuses every connection it would otherwise make
	// for the guest, above all to 10.0.2.2, which is the host's 127.0.0.1 (the broker). No way out.
	const netdev = nic.kind === 'tap' ? `tap,id=net0,ifname=${nic.ifname},script=no,downscript=no` : 'user,id=net0,restrict=on';
	return ['-netdev', netdev, '-device', `virtio-net-pci,netdev=net0,mac=${nic.mac}`];
}

function validate(spec: QemuSpec): void {
	if (!VM_ID_PATTERN.test(spec.id)) {
		throw new QemuSpecError(`invalid VM id ${JSON.stringify(spec.id)}: expected "vm-" and 8 lowercase letters`);
	}

	if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < MIN_MEMORY_MB) {
		throw new QemuSpecError(`invalid memory for ${spec.id}: ${spec.memoryMb} MiB, expected an integer ≥ ${MIN_MEMORY_MB}`);
	}

	if (!Number.isInteger(spec.cpus) || spec.cpus < 1) {
		throw new QemuSpecError(`invalid CPU count for ${spec.id}: ${spec.cpus}, expected an integer ≥ 1`);
	}

	if (spec.runAs !== undefined && !RUN_AS_PATTERN.test(spec.runAs)) {
		throw new QemuSpecError(`invalid -runas user for ${spec.id}: ${JSON.stringify(spec.runAs)}, expected a plain login name`);
	}

	if (spec.accel !== 'kvm' && spec.accel !== 'tcg') {
		throw new QemuSpecError(`invalid accelerator for ${spec.id}: ${JSON.stringify(spec.accel)}, expected "kvm" or "tcg"`);
	}

	if (spec.nic) {
		if (!/^[\da-f]{2}(?::[\da-f]{2}){5}$/.test(spec.nic.mac) || (Number.parseInt(spec.nic.mac.slice(0, 2), 16) & 0x01) === 1) {
			throw new QemuSpecError(`invalid MAC for ${spec.id}: ${JSON.stringify(spec.nic.mac)}, expected a lowercase unicast aa:bb:cc:dd:ee:ff`);
		}

		// Interface names are at most 15 characters and QEMU splits options at commas.
		if (spec.nic.kind === 'tap' && !/^[\w.-]{1,15}$/.test(spec.nic.ifname)) {
			throw new QemuSpecError(`invalid TAP name for ${spec.id}: ${JSON.stringify(spec.nic.ifname)}`);
		}
	}

	for (const [name, path] of Object.entries(spec.paths)) {
		// Discovery looks for `<stateRoot>/<id>/` in the command line, so paths must be absolute.
		if (!isAbsolute(path)) {
			throw new QemuSpecError(`invalid ${name} path for ${spec.id}: ${JSON.stringify(path)} is not absolute`);
		}

		// Commas separate QEMU sub-options, so a path with one would be cut short and misread.
		if (path.includes(',')) {
			throw new QemuSpecError(`invalid ${name} path for ${spec.id}: ${JSON.stringify(path)} contains a comma`);
		}
	}

	for (const [what, path] of [['QMP', spec.paths.qmp], ['console', spec.paths.consoleSocket]] as const) {
		const socketBytes = Buffer.byteLength(path);
		if (socketBytes > MAX_SOCKET_PATH_BYTES) {
			throw new QemuSpecError(
				`${what} socket path for ${spec.id} is ${socketBytes} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte unix socket limit: use a shorter state directory`,
			);
		}
	}
}
