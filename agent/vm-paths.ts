/**
 * Where a VM's files live on its host: one directory per VM under the agent's state root. Pure.
 */
import {join, resolve} from 'node:path';
import {VM_ID_PATTERN} from '../source/protocol/messages.js';

/** Absolute paths of everything the agent keeps for one VM. */
export type VmPaths = {
	/** `<stateRoot>/<vmId>`: holds everything below. */
	readonly dir: string;
	/** The agent's record of the VM (`vm.json`). */
	readonly meta: string;
	/** The VM's copy-on-write overlay over its image (`disk.qcow2`). */
	readonly disk: string;
	/** QEMU's QMP unix socket (`qmp.sock`); its path must stay under 108 bytes. */
	readonly qmp: string;
	/** QEMU's `-pidfile` (`qemu.pid`). */
	readonly pid: string;
	/** The guest's serial console (`console.log`), written by QEMU for all that passes through `consoleSocket`. */
	readonly console: string;
	/** QEMU's end of the serial port (`console.sock`), a unix socket the agent holds; under 108 bytes. */
	readonly consoleSocket: string;
	/** QEMU's own stdout and stderr (`qemu.log`). */
	readonly qemuLog: string;
	/** How the QEMU process ended, written by the agent (`exit.json`). */
	readonly exit: string;
	/** The VM's NoCloud seed CD-ROM (`seed.iso`): hostname, SSH keys and user-data for the guest. */
	readonly seed: string;
};

/** Thrown when a VM id would not make a safe directory name (so `../x` never escapes the state root). */
export class InvalidVmIdError extends Error {
	override name = 'InvalidVmIdError';
}

/** The paths of VM `vmId` under `stateRoot` (made absolute against the working directory). */
export function vmPaths(stateRoot: string, vmId: string): VmPaths {
	if (!VM_ID_PATTERN.test(vmId)) {
		throw new InvalidVmIdError(`invalid VM id ${JSON.stringify(vmId)}: expected "vm-" and 8 lowercase letters`);
	}

	const dir = join(resolve(stateRoot), vmId);
	return {
		dir,
		meta: join(dir, 'vm.json'),
		disk: join(dir, 'disk.qcow2'),
		qmp: join(dir, 'qmp.sock'),
		pid: join(dir, 'qemu.pid'),
		console: join(dir, 'console.log'),
		consoleSocket: join(dir, 'console.sock'),
		qemuLog: join(dir, 'qemu.log'),
		exit: join(dir, 'exit.json'),
		seed: join(dir, 'seed.iso'),
	};
}
