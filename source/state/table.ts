/**
 * The VM table's pure model: columns and their priority when the terminal is narrow, filtering
 * (substring over every column), stable sorting, and the visible window around the selection.
 */
import {describeState, formatDuration} from '../format.js';
import type {Vm} from '../protocol/index.js';
import {groupOfVm} from '../protocol/member-token.js';
import {filterableBy, filterRows, type FieldGetters} from './filter.js';

export const COLUMN_IDS = ['host', 'vm', 'image', 'state', 'ip', 'cpu', 'mem', 'uptime'] as const;
export type ColumnId = (typeof COLUMN_IDS)[number];

export type Column = {
	readonly id: ColumnId;
	readonly title: string;
	readonly width: number;
	/** Lower goes first when columns must be dropped to fit. */
	readonly keep: number;
	readonly alignRight?: boolean;
	/** Grows into the space left over, up to this width (STATE: room to say why). */
	readonly maxWidth?: number;
};

export const COLUMNS: readonly Column[] = [
	{id: 'host', title: 'HOST', width: 10, keep: 9},
	{id: 'vm', title: 'VM', width: 11, keep: 10},
	{id: 'image', title: 'IMAGE', width: 10, keep: 5},
	{id: 'state', title: 'STATE', width: 8, keep: 8, maxWidth: 30},
	{id: 'ip', title: 'IP', width: 15, keep: 4},
	{id: 'cpu', title: 'CPU%', width: 4, keep: 3, alignRight: true},
	{id: 'mem', title: 'MEM', width: 5, keep: 6, alignRight: true},
	{id: 'uptime', title: 'UPTIME', width: 6, keep: 2, alignRight: true},
];

/** Space for the mark and selection gutter before the first column. */
export const GUTTER_WIDTH = 2;

/** The columns that fit in `width` characters (one space between columns), in display order. */
export function fitColumns(width: number): Column[] {
	const kept = [...COLUMNS];
	const total = (columns: readonly Column[]) => GUTTER_WIDTH + columns.reduce((sum, column) => sum + column.width + 1, 0);
	while (kept.length > 1 && total(kept) > width) {
		const weakest = kept.reduce((low, column) => (column.keep < low.keep ? column : low));
		kept.splice(kept.indexOf(weakest), 1);
	}

	// Space left over goes to columns that can use it (`crashed (restarts 3/5)` rather than `crashed…`).
	let spare = width - total(kept);
	return kept.map(column => {
		const grow = Math.max(0, Math.min(spare, (column.maxWidth ?? column.width) - column.width));
		spare -= grow;
		return grow > 0 ? {...column, width: column.width + grow} : column;
	});
}

export function cellText(vm: Vm, column: ColumnId): string {
	switch (column) {
		case 'host': {
			return vm.host;
		}

		case 'vm': {
			return vm.id;
		}

		case 'image': {
			return vm.image;
		}

		case 'state': {
			return describeState(vm);
		}

		case 'ip': {
			return vm.ip ?? '';
		}

		// Measured load when the agent sends it (a running VM): CPU % of its vCPUs and RSS; otherwise
		// the configured size (vCPUs, memory).
		case 'cpu': {
			return vm.load ? `${Math.round(vm.load.cpuPercent)}%` : `${vm.cpus}cpu`;
		}

		case 'mem': {
			const mb = vm.load ? Math.round(vm.load.rssBytes / (1024 * 1024)) : vm.memoryMb;
			return mb >= 1024 && (vm.load || mb % 1024 === 0) ? `${vm.load ? (mb / 1024).toFixed(1) : mb / 1024}G` : `${mb}M`;
		}

		case 'uptime': {
			return vm.uptimeSeconds === null ? '' : formatDuration(vm.uptimeSeconds);
		}
	}
}

function compareBy(column: ColumnId): (a: Vm, b: Vm) => number {
	switch (column) {
		case 'cpu': {
			return (a, b) => (a.load?.cpuPercent ?? -1) - (b.load?.cpuPercent ?? -1) || a.cpus - b.cpus;
		}

		case 'mem': {
			return (a, b) => (a.load?.rssBytes ?? -1) - (b.load?.rssBytes ?? -1) || a.memoryMb - b.memoryMb;
		}

		case 'uptime': {
			return (a, b) => (a.uptimeSeconds ?? -1) - (b.uptimeSeconds ?? -1);
		}

		default: {
			return (a, b) => cellText(a, column).localeCompare(cellText(b, column));
		}
	}
}

export type SortSpec = {readonly column: ColumnId; readonly isDescending: boolean};

const VM_FIELDS: FieldGetters<Vm> = {
	state: vm => (vm.migration ? [vm.state, 'migrating'] : vm.state),
	host: vm => vm.host,
	image: vm => vm.image,
	group: vm => groupOfVm(vm) ?? '',
	vm: vm => vm.id,
	ip: vm => vm.ip ?? '',
	owner: vm => vm.owner ?? '',
	network: vm => vm.network ?? '',
};

/** The fields `/` can name in the VM table (`state:crashed host:host-a`). */
export const VM_FILTER_FIELDS = Object.keys(VM_FIELDS);

/** One VM as the filter reads it: its raw fields, and every column's text. */
export const filterableVm = filterableBy(VM_FIELDS, vm => COLUMN_IDS.map(column => cellText(vm, column)).join('\u0000'));

/** Filter (see `filter.ts`) then sort; ties fall back to host, creation time and id, so the order never jitters. */
export function tableRows(vms: Iterable<Vm>, filter: string, sort: SortSpec): Vm[] {
	const rows = filterRows(vms, filter, VM_FILTER_FIELDS, filterableVm);

	const primary = compareBy(sort.column);
	const direction = sort.isDescending ? -1 : 1;
	return rows.sort(
		(a, b) => direction * primary(a, b) || a.host.localeCompare(b.host) || a.createdAt - b.createdAt || a.id.localeCompare(b.id),
	);
}

/** First row index to show so that `selected` is visible in a window of `height` rows. */
export function windowStart(selected: number, height: number, previousStart: number, rowCount: number): number {
	if (height <= 0 || rowCount <= height) {
		return 0;
	}

	let start = Math.min(previousStart, rowCount - height);
	if (selected < start) {
		start = selected;
	} else if (selected >= start + height) {
		start = selected - height + 1;
	}

	return Math.max(0, start);
}

export function nextSortColumn(column: ColumnId): ColumnId {
	const index = COLUMN_IDS.indexOf(column);
	return COLUMN_IDS[(index + 1) % COLUMN_IDS.length]!;
}
