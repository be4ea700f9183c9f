/** Pure text formatting for the scriptable CLI's human output. */
import {compareNames} from './compare-names.js';
import {groupOfVm} from './protocol/member-token.js';
import type {HostImages, HostSnapshot, Vm} from './protocol/index.js';

export function formatDuration(seconds: number | null): string {
	if (seconds === null) {
		return '-';
	}

	if (seconds < 60) {
		return `${Math.floor(seconds)}s`;
	}

	if (seconds < 3600) {
		return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
	}

	if (seconds < 86_400) {
		return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
	}

	return `${Math.floor(seconds / 86_400)}d${String(Math.floor((seconds % 86_400) / 3600)).padStart(2, '0')}h`;
}

export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
	const widths = header.map((title, column) => Math.max(title.length, ...rows.map(row => (row[column] ?? '').length)));
	const line = (cells: readonly string[]) =>
		cells
			.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
			.join('  ')
			.trimEnd();
	return [line(header), ...rows.map(row => line(row))].join('\n');
}

/** Bytes as a short binary size for tables: `10G`, `1.5G`, `12M`, `300K`. */
export function formatBytes(bytes: number): string {
	const units: Array<[string, number]> = [
		['T', 1024 ** 4],
		['G', 1024 ** 3],
		['M', 1024 ** 2],
		['K', 1024],
	];
	for (const [unit, size] of units) {
		if (bytes >= size) {
			const value = bytes / size;
			return `${value >= 10 || Number.isInteger(value) ? Math.round(value) : value.toFixed(1)}${unit}`;
		}
	}

	return `${bytes}B`;
}

/**
 * A VM's state with why, as the CLI's list and the TUI's STATE column show it: `crashed (restarts
 * 5/5, exit 1)`, `running (restarts 2/5)` while a restart policy is at work, `stopped (powered off)`,
 * `migrating→host-b 42%` while its host migrates it out.
 */
export function describeState(vm: Vm): string {
	if (vm.migration) {
		return `migrating→${vm.migration.to} ${Math.round(vm.migration.percent)}%`;
	}

	const restarts = vm.restarts && vm.restarts.count > 0 ? `restarts ${vm.restarts.count}/${vm.restarts.limit}` : undefined;
	switch (vm.state) {
		case 'crashed':
		case 'stopped': {
			const why = [restarts, vm.exit ?? undefined].filter(part => part !== undefined);
			return why.length > 0 ? `${vm.state} (${why.join(', ')})` : vm.state;
		}

		case 'starting':
		case 'running': {
			return restarts ? `${vm.state} (${restarts})` : vm.state;
		}

		default: {
			return vm.state;
		}
	}
}

/** A VM's disk as `used/size` (`12M/10G`), or '-' from an agent older than the lifecycle. */
export function describeDisk(vm: Vm): string {
	return vm.disk ? `${formatBytes(vm.disk.usedBytes)}/${formatBytes(vm.disk.sizeBytes)}` : '-';
}

/** Stable order: host, then creation time, then id. */
export function sortVms(vms: readonly Vm[]): Vm[] {
	return [...vms].sort((a, b) => compareNames(a.host, b.host) || a.createdAt - b.createdAt || compareNames(a.id, b.id));
}

export function formatVms(vms: readonly Vm[]): string {
	if (vms.length === 0) {
		return 'No VMs.';
	}

	// Agents older than the lifecycle do not report disks: no column of dashes for them.
	const hasDisk = vms.some(vm => vm.disk !== undefined);
	// The GROUP column only when some VM is a group's member: a fleet without groups reads as before.
	const hasGroups = vms.some(vm => groupOfVm(vm) !== undefined);
	return formatTable(
		['HOST', 'VM', 'IMAGE', 'STATE', 'IP', 'MEM', 'CPUS', 'PID', 'UPTIME', ...(hasDisk ? ['DISK'] : []), ...(hasGroups ? ['GROUP'] : [])],
		sortVms(vms).map(vm => [
			vm.host,
			vm.id,
			vm.image,
			describeState(vm),
			vm.ip ?? '-',
			`${vm.memoryMb}M`,
			String(vm.cpus),
			vm.pid === null ? '-' : String(vm.pid),
			formatDuration(vm.uptimeSeconds),
			...(hasDisk ? [describeDisk(vm)] : []),
			...(hasGroups ? [groupOfVm(vm) ?? '-'] : []),
		]),
	);
}

export type HostRow = {readonly id: string; readonly answered: boolean} & Partial<HostSnapshot['host']>;

export function hostRows(snapshots: readonly HostSnapshot[], missing: readonly string[]): HostRow[] {
	return [
		...snapshots.map(snapshot => ({...snapshot.host, answered: true})),
		...missing.map(id => ({id, answered: false})),
	].sort((a, b) => compareNames(a.id, b.id));
}

export function formatHosts(rows: readonly HostRow[]): string {
	if (rows.length === 0) {
		return 'No hosts.';
	}

	// The BROKER column (which node each agent is on) only when some agent says: a single broker needs none.
	const hasBroker = rows.some(row => row.broker !== undefined);
	return formatTable(
		['HOST', 'STATUS', 'VMS', 'FREE MEM', 'ACCEL', 'IMAGES', ...(hasBroker ? ['BROKER'] : [])],
		rows.map(row => [
			row.id,
			row.answered ? (row.cordoned ? 'cordoned' : 'up') : 'no answer',
			row.vmCount === undefined ? '-' : `${row.vmCount}/${row.maxVms}`,
			row.freeMemoryMb === undefined ? '-' : `${row.freeMemoryMb}M`,
			row.accel ?? '-',
			row.images?.join(',') ?? '-',
			...(hasBroker ? [row.broker ?? '-'] : []),
		]),
	);
}

export type ImageRow = {readonly name: string; readonly sizeBytes: number; readonly hosts: string[]};

export function imageRows(replies: readonly HostImages[]): ImageRow[] {
	const byName = new Map<string, ImageRow>();
	for (const reply of replies) {
		for (const image of reply.images) {
			const row = byName.get(image.name) ?? {name: image.name, sizeBytes: image.sizeBytes, hosts: []};
			row.hosts.push(reply.host);
			byName.set(image.name, row);
		}
	}

	return [...byName.values()].map(row => ({...row, hosts: row.hosts.sort()})).sort((a, b) => compareNames(a.name, b.name));
}

export function formatImages(rows: readonly ImageRow[]): string {
	if (rows.length === 0) {
		return 'No images.';
	}

	return formatTable(
		['IMAGE', 'SIZE', 'HOSTS'],
		rows.map(row => [row.name, `${(row.sizeBytes / 1024 / 1024).toFixed(1)}M`, row.hosts.join(',')]),
	);
}
