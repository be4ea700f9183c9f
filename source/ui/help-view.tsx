/**
 * `?`: the keys of the screen it was pressed on, and those that work everywhere, read from the key
 * table (source/state/table-keys.ts). Two columns each, so an 80×24 terminal shows them all.
 */
import {Box, Text} from 'ink';
import {SCREEN_TITLES, TABLE_BINDINGS, type Binding, type Screen} from '../state/table-keys.js';

function Columns({bindings}: {readonly bindings: readonly Binding[]}) {
	const half = Math.ceil(bindings.length / 2);
	return (
		<Box flexDirection="row">
			{[bindings.slice(0, half), bindings.slice(half)].map((column, index) => (
				<Box key={index} flexDirection="column" flexGrow={1} flexBasis={0} marginRight={1}>
					{column.map(binding => (
						<Text key={`${binding.command}/${binding.label}`} wrap="truncate">
							<Text bold>{binding.label.padEnd(9)}</Text>
							{binding.help}
						</Text>
					))}
				</Box>
			))}
		</Box>
	);
}

export function HelpView({screen}: {readonly screen: Screen}) {
	const own = TABLE_BINDINGS.filter(binding => binding.screens !== 'all' && binding.screens.includes(screen));
	const everywhere = TABLE_BINDINGS.filter(binding => binding.screens === 'all');
	return (
		<Box flexDirection="column" borderStyle="round" paddingX={1}>
			<Text bold wrap="truncate">
				kloud-tui keys: {SCREEN_TITLES[screen]} <Text dimColor>(? on another screen shows its keys; README, "The TUI")</Text>
			</Text>
			<Columns bindings={own} />
			<Text bold>everywhere</Text>
			<Columns bindings={everywhere} />
		</Box>
	);
}
