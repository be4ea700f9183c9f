/**
 * Pure: which network namespace a VM's QEMU runs in, and the command that puts it there. A guest
 * must have no path to the control plane: with user-mode networking QEMU itself opens the guest's
 * connections (10.0.2.2 is the host's 127.0.0.1, where the broker listens), so QEMU runs in a
 * fresh, empty network namespace of its own (`unshare --net`: only a loopback that is down, no
 * routes), on top of slirp's `restrict=on` (see `qemu-args.ts`). The namespace has no name and no
 * file: the kernel frees it when QEMU ends, so no stop, crash or restart path has anything to
 * clean up. `unshare` and `ip netns exec` both exec QEMU in place: the pid, the process name and
 * the command line discovery reads are QEMU's own.
 */
import type {NetworkMode} from '../source/protocol/index.js';
import {QEMU_BINARY} from './qemu-args.js';

/** Where QEMU's network lives: `netns` names an existing namespace (`--netns`), `hasOwnNetns` asks for a fresh empty one. */
export type QemuNetns = {readonly netns?: string; readonly hasOwnNetns?: boolean};

/**
 * TAP VMs (`private`, `public`) run where their TAP is (the agent's `--netns`, if any); `user` VMs
 * run in a namespace of their own when the agent may make one (root: CAP_SYS_ADMIN), else with
 * slirp's restriction alone; `none` VMs have no NIC and stay where they are.
 */
export function qemuNetns(network: NetworkMode, options: {readonly netns?: string; readonly canUnshare: boolean}): QemuNetns {
	if (network === 'user') {
		return options.canUnshare ? {hasOwnNetns: true} : {};
	}

	return options.netns === undefined ? {} : {netns: options.netns};
}

/** The file and argv that run QEMU with `args` in `where`. */
export function qemuCommand(args: readonly string[], where: QemuNetns = {}): {readonly file: string; readonly args: readonly string[]} {
	if (where.hasOwnNetns) {
		return {file: 'unshare', args: ['--net', '--', QEMU_BINARY, ...args]};
	}

	if (where.netns !== undefined) {
		return {file: 'ip', args: ['netns', 'exec', where.netns, QEMU_BINARY, ...args]};
	}

	return {file: QEMU_BINARY, args};
}
