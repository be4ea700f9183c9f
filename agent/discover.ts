/**
 * Pure discovery: which rows of the process table are this agent's VMs. A VM is recognised by its
 * process name (the bare VM id) and by its files living under this agent's state root, so several
 * agents with different state directories can share one machine.
 */
import {resolve} from 'node:path';
import {VM_ID_PATTERN} from '../source/protocol/messages.js';
import type {ProcessRow} from './runtime.js';

/** A running QEMU process that belongs to this agent. */
export type ObservedVm = {
	readonly id: string;
	readonly pid: number;
	/** Its start time (`/proc/<pid>/stat` field 22): signals go to this process only, never to a later one with its pid. */
	readonly startTime?: number;
};

/** Characters that can come right before a path in QEMU's command line (`file=`, `unix:`, a space). */
const PATH_PREFIXES = new Set([' ', '=', ':', ',']);

/** The VMs among `rows` whose files live under `stateRoot` (made absolute against the working directory). */
export function discoverVms(rows: readonly ProcessRow[], stateRoot: string): ObservedVm[] {
	const root = resolve(stateRoot);
	const vms: ObservedVm[] = [];
	for (const row of rows) {
		if (VM_ID_PATTERN.test(row.name) && hasPath(row.cmd, `${root}/${row.name}/`)) {
			vms.push({id: row.name, pid: row.pid, ...(row.startTime === undefined ? {} : {startTime: row.startTime})});
		}
	}

	return vms;
}

/** Whether `dir` starts a path in `cmd`: `/kloud/vm-x/` must not match inside `/tmp/kloud/vm-x/`. */
function hasPath(cmd: string, dir: string): boolean {
	for (let index = cmd.indexOf(dir); index !== -1; index = cmd.indexOf(dir, index + 1)) {
		if (index === 0 || PATH_PREFIXES.has(cmd[index - 1] ?? '')) {
			return true;
		}
	}

	return false;
}
