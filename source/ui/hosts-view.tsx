/**
 * `2` / `H`: every host the TUI knows, up or not: its state and cordon, VMs against `--max-vms`,
 * vCPUs and memory committed against its budgets (bars), live use where the list replies carry it,
 * when it was last heard; the selected host's accel, images, underlay, broker node below, with the
 * live migrations out of and into it (whoever set them going) and the drains set going from here.
 */
import {Box, Text} from 'ink';
import type {Vm, VmMigration} from '../protocol/index.js';
import {hostActivity, type HostActivity} from '../state/host-migrations.js';
import type {HostRow} from '../state/hosts.js';
import type {Operation} from '../state/view.js';
import {bar, megabytes} from './bar.js';
import {fit, formatAge} from './format-age.js';
import {ListFrame, type ListWindow} from './list-frame.js';
import {color} from './theme.js';

const BAR = 6;

export type HostsViewProps = {
	readonly rows: readonly HostRow[];
	/** The list's window: rows shown are the body less the header and the selected host's details. */
	readonly window: ListWindow;
	readonly now: number;
	/** The fleet's VMs: a VM its source host reports migrating shows on both hosts' details. */
	readonly vms: ReadonlyMap<string, Vm>;
	readonly operations: readonly Operation[];
};

function stateText(row: HostRow, now: number): string {
	const state = row.health === 'stale' ? `stale ${formatAge(now - (row.host.lastAnsweredAt ?? row.host.lastHeardAt))}` : row.host.hasLeft ? 'down (left)' : row.health;
	return row.isCordoned ? `${state},cordon` : state;
}

function healthColor(row: HostRow): string | undefined {
	return color(row.health === 'up' ? (row.isCordoned ? 'yellow' : 'green') : row.health === 'stale' ? 'yellow' : 'red');
}

const HEADER = `  ${fit('HOST', 10)} ${fit('STATE', 13)} ${fit('VMS', 5, {alignRight: true})} ${fit('VCPUS', BAR + 7)} ${fit('MEMORY', BAR + 12)} ${fit('CPU%', 5, {alignRight: true})} ${fit('RSS', 5, {alignRight: true})} ${fit('HEARD', 5, {alignRight: true})}`;

function hostCells(row: HostRow, now: number) {
	const vms = `${row.vmCount}/${row.maxVms ?? '-'}`;
	const cpus = `${bar(row.cpus.used, row.cpus.budget, BAR)} ${`${row.cpus.used}/${row.cpus.budget ?? '-'}`.padEnd(6)}`;
	const memory = `${bar(row.memoryMb.used, row.memoryMb.budget, BAR)} ${`${megabytes(row.memoryMb.used)}/${row.memoryMb.budget === null ? '-' : megabytes(row.memoryMb.budget)}`.padEnd(11)}`;
	const cpuUse = row.cpuUsePercent === null ? '-' : `${Math.round(row.cpuUsePercent)}%`;
	const memoryUse = row.memoryUseMb === null ? '-' : megabytes(row.memoryUseMb);
	return (
		<Text dimColor={row.health !== 'up'}>
			{fit(row.id, 10)} <Text color={healthColor(row)}>{fit(stateText(row, now), 13)}</Text> {fit(vms, 5, {alignRight: true})} {fit(cpus, BAR + 7)} {fit(memory, BAR + 12)}{' '}
			{fit(cpuUse, 5, {alignRight: true})} {fit(memoryUse, 5, {alignRight: true})} {fit(formatAge(now - row.host.lastHeardAt), 5, {alignRight: true})}
		</Text>
	);
}

function progressText(migration: VmMigration): string {
	return `${migration.phase} ${Math.round(migration.percent)}%`;
}

function activityLine(entry: HostActivity, now: number): {readonly text: string; readonly tone: 'cyan' | 'red' | 'green'} {
	if (entry.kind === 'migration') {
		const {vm, migration} = entry;
		const what = entry.direction === 'out' ? `migrating ${vm.id} to ${migration.to}` : `taking in ${vm.id} from ${vm.host}`;
		return {text: `⟳ ${what}: ${progressText(migration)} (${formatAge(now - migration.startedAt)})`, tone: 'cyan'};
	}

	const {operation, migration} = entry;
	if (operation.result !== null) {
		return {text: `${operation.result.text} (${formatAge(now - operation.result.at)} ago)`, tone: operation.result.isError ? 'red' : 'green'};
	}

	return {text: `⟳ ${operation.text}${migration ? `: ${progressText(migration)}` : ''} (${formatAge(now - operation.startedAt)})`, tone: 'cyan'};
}

/** The selected host's other facts, and what is under way on it. */
function HostDetails({row, now, activity}: {readonly row: HostRow; readonly now: number; readonly activity: readonly HostActivity[]}) {
	const status = row.host.status;
	const facts = [
		`accel ${row.accel ?? '-'}`,
		`images ${row.images.length === 0 ? '-' : row.images.join(', ')}`,
		`underlay ${row.underlay ?? '-'}`,
		`broker ${row.broker ?? '-'}`,
		`heartbeat ${formatAge(now - row.host.lastHeardAt)} ago`,
		...(status ? [`agent up ${formatAge(now - status.startedAt)}`] : []),
	];
	return (
		<Box flexDirection="column">
			<Text wrap="truncate">
				<Text bold>{row.id}</Text> · {facts.join(' · ')}
			</Text>
			{activity.map(entry => {
				const line = activityLine(entry, now);
				return (
					<Text key={entry.kind === 'operation' ? entry.operation.id : `vm:${entry.vm.id}`} wrap="truncate" color={color(line.tone)}>
						{line.text}
					</Text>
				);
			})}
		</Box>
	);
}

export function HostsView({rows, window, now, vms, operations}: HostsViewProps) {
	const selectedRow = rows[window.selected];
	return (
		<Box flexDirection="column">
			<ListFrame header={HEADER} rows={rows} window={window} rowKey={row => row.id} renderRow={row => hostCells(row, now)} />
			{selectedRow ? (
				<Box marginTop={1}>
					<HostDetails row={selectedRow} now={now} activity={hostActivity(selectedRow.id, vms.values(), operations)} />
				</Box>
			) : null}
		</Box>
	);
}

/** Lines the hosts view needs besides its list: the header, a gap and the selected host's details (one line, and one per operation or migration on it). */
export function hostsViewChrome(row: HostRow | undefined, vms: ReadonlyMap<string, Vm>, operations: readonly Operation[]): number {
	return 1 + (row ? 2 + hostActivity(row.id, vms.values(), operations).length : 0);
}
