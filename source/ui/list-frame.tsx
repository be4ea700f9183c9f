/** What the hosts, groups and events lists share: a bold header, the visible window of rows (or why there is none), the selection gutter. */
import {Box, Text} from 'ink';
import type {ReactNode} from 'react';

export type ListWindow = {
	readonly start: number;
	/** Rows shown. */
	readonly height: number;
	readonly selected: number;
	readonly emptyText: string;
};

export function ListFrame<T>({header, rows, window, rowKey, renderRow}: {
	readonly header: string;
	readonly rows: readonly T[];
	readonly window: ListWindow;
	readonly rowKey: (row: T, index: number) => string;
	/** The row's cells after the gutter. */
	readonly renderRow: (row: T) => ReactNode;
}) {
	const {start, height, selected, emptyText} = window;
	const visible = rows.slice(start, start + height);
	return (
		<Box flexDirection="column">
			<Text bold wrap="truncate">
				{header}
			</Text>
			{visible.length === 0 ? <Text dimColor>{emptyText}</Text> : null}
			{visible.map((row, offset) => {
				const isSelected = start + offset === selected;
				return (
					<Text key={rowKey(row, start + offset)} inverse={isSelected} wrap="truncate">
						{' '}
						{isSelected ? '›' : ' '}
						{renderRow(row)}
					</Text>
				);
			})}
		</Box>
	);
}
