/** The VM table: only the visible window of rows is rendered, so 10,000 VMs cost what 20 do. */
import {Box, Text} from 'ink';
import {memo} from 'react';
import type {Vm} from '../protocol/index.js';
import {hostHealth, type HostView} from '../state/fleet.js';
import {cellText, type Column, type SortSpec} from '../state/table.js';
import {fit, formatAge} from './format-age.js';
import {color, stateColor} from './theme.js';

export type VmTableProps = {
	readonly rows: readonly Vm[];
	readonly columns: readonly Column[];
	readonly start: number;
	readonly height: number;
	readonly selected: number;
	readonly marked: ReadonlySet<string>;
	readonly hosts: ReadonlyMap<string, HostView>;
	readonly now: number;
	readonly sort: SortSpec;
	readonly isDimmed: boolean;
	readonly emptyText: string;
};

function hostCell(vm: Vm, host: HostView | undefined, now: number): {text: string; isStale: boolean} {
	if (!host) {
		return {text: vm.host, isStale: false};
	}

	const health = hostHealth(host, now);
	if (health === 'up') {
		return {text: vm.host, isStale: false};
	}

	const since = host.lastAnsweredAt ?? host.lastHeardAt;
	return {text: health === 'down' ? `${vm.host} down` : `${vm.host} ${formatAge(now - since)}`, isStale: true};
}

const Row = memo(function Row({
	vm,
	columns,
	isSelected,
	isMarked,
	host,
	now,
	isDimmed,
}: {
	readonly vm: Vm;
	readonly columns: readonly Column[];
	readonly isSelected: boolean;
	readonly isMarked: boolean;
	readonly host: HostView | undefined;
	readonly now: number;
	readonly isDimmed: boolean;
}) {
	const hostState = hostCell(vm, host, now);
	return (
		<Text inverse={isSelected} dimColor={isDimmed || hostState.isStale} wrap="truncate">
			{isMarked ? '*' : ' '}
			{isSelected ? '›' : ' '}
			{columns.map(column => {
				const text = column.id === 'host' ? hostState.text : cellText(vm, column.id);
				const cell = `${fit(text, column.width, {alignRight: column.alignRight})} `;
				return column.id === 'state' ? (
					<Text key={column.id} color={vm.migration ? color('cyan') : stateColor(vm.state)}>
						{cell}
					</Text>
				) : (
					cell
				);
			})}
		</Text>
	);
});

export function VmTable({rows, columns, start, height, selected, marked, hosts, now, sort, isDimmed, emptyText}: VmTableProps) {
	const visible = rows.slice(start, start + height);
	return (
		<Box flexDirection="column">
			<Text bold wrap="truncate">
				{'  '}
				{columns
					.map(column => {
						const arrow = column.id === sort.column ? (sort.isDescending ? '↓' : '↑') : '';
						return fit(`${column.title}${arrow}`, column.width, {alignRight: column.alignRight});
					})
					.join(' ')}
			</Text>
			{visible.length === 0 ? <Text dimColor>{emptyText}</Text> : null}
			{visible.map((vm, offset) => (
				<Row
					key={vm.id}
					vm={vm}
					columns={columns}
					isSelected={start + offset === selected}
					isMarked={marked.has(vm.id)}
					host={hosts.get(vm.host)}
					now={now}
					isDimmed={isDimmed}
				/>
			))}
		</Box>
	);
}
