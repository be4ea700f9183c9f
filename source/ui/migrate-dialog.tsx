/** `m`: where to live-migrate the selected VM. Hosts that can take it first (most room first); the others say why not. */
import {Box, Text} from 'ink';
import type {MigrateDialog as MigrateDialogState} from '../state/view.js';
import {color} from './theme.js';

export function MigrateDialog({dialog, height}: {readonly dialog: MigrateDialogState; readonly height: number}) {
	const listHeight = Math.max(1, height - 4);
	const first = Math.max(0, Math.min(dialog.index - listHeight + 1, dialog.choices.length - listHeight));
	return (
		<Box flexDirection="column" borderStyle="round" paddingX={1}>
			<Text bold wrap="truncate">
				Migrate {dialog.target.id} from {dialog.target.host} to:
			</Text>
			{dialog.choices.length === 0 ? <Text color={color('yellow')}>No other host is known.</Text> : null}
			{dialog.choices.slice(first, first + listHeight).map((choice, offset) => {
				const isSelected = first + offset === dialog.index;
				return (
					<Text key={choice.host} inverse={isSelected} dimColor={choice.problem !== null} wrap="truncate">
						{isSelected ? '› ' : '  '}
						{choice.host.padEnd(12)} {choice.problem === null ? choice.room : `cannot: ${choice.problem}`}
					</Text>
				);
			})}
		</Box>
	);
}
