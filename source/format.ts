/** Pure text formatting for the scriptable CLI's human output. */
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

/** Stable order: host, then creation time, then id. */
export function sortVms(vms: readonly Vm[]): Vm[] {
	return [...vms].sort((a, b) => a.host.localeCompare(b.host) || a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}

export function formatVms(vms: readonly Vm[]): string {
	if (vms.length === 0) {
		return 'No VMs.';
	}

	return formatTable(
		['HOST', 'VM', 'IMAGE', 'STATE', 'IP', 'MEM', 'CPUS', 'PID', 'UPTIME'],
		sortVms(vms).map(vm => [
			vm.host,
			vm.id,
			vm.image,
			vm.state === 'crashed' && vm.exit ? `crashed (${vm.exit})` : vm.state,
			vm.ip ?? '-',
			`${vm.memoryMb}M`,
			String(vm.cpus),
			vm.pid === null ? '-' : String(vm.pid),
			formatDuration(vm.uptimeSeconds),
		]),
	);
}

export type HostRow = {readonly id: string; readonly answered: boolean} & Partial<HostSnapshot['host']>;

export function hostRows(snapshots: readonly HostSnapshot[], missing: readonly string[]): HostRow[] {
	return [
		...snapshots.map(snapshot => ({...snapshot.host, answered: true})),
		...missing.map(id => ({id, answered: false})),
	].sort((a, b) => a.id.localeCompare(b.id));
}

export function formatHosts(rows: readonly HostRow[]): string {
	if (rows.length === 0) {
		return 'No hosts.';
	}

	return formatTable(
		['HOST', 'STATUS', 'VMS', 'FREE MEM', 'ACCEL', 'IMAGES'],
		rows.map(row => [
			row.id,
			row.answered ? (row.cordoned ? 'cordoned' : 'up') : 'no answer',
			row.vmCount === undefined ? '-' : `${row.vmCount}/${row.maxVms}`,
			row.freeMemoryMb === undefined ? '-' : `${row.freeMemoryMb}M`,
			row.accel ?? '-',
			row.images?.join(',') ?? '-',
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

	return [...byName.values()].map(row => ({...row, hosts: row.hosts.sort()})).sort((a, b) => a.name.localeCompare(b.name));
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
