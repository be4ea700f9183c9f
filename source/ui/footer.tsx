/** The message line (results and errors) and the keys that work right now. */
import {Box, Text} from 'ink';
import type {Message, Mode} from '../state/view.js';
import {color} from './theme.js';

const KEYS: Record<Mode['kind'], string> = {
	table: '↑↓/jk move  space mark  n new  b boot  x stop  K kill  R reboot  D delete  ⏎ details  / filter  ? help  q quit  s/S sort  p pause  r refresh',
	filter: 'type to filter  ⏎ keep  esc clear',
	help: 'any key: back',
	detail: 'esc/q back  r reload console  p pause following',
	confirm: 'y confirm  (reboot: h hard reset)  any other key: cancel',
	start: '↑↓ image  tab next field  ⏎ start  esc cancel',
};

export function Footer({message, mode, filter}: {readonly message: Message | null; readonly mode: Mode; readonly filter: string}) {
	return (
		<Box flexDirection="column">
			{mode.kind === 'filter' ? (
				<Text wrap="truncate">
					/{filter}
					<Text inverse> </Text>
				</Text>
			) : message ? (
				<Text color={message.isError ? color('red') : color('green')} wrap="truncate">
					{message.text}
				</Text>
			) : filter ? (
				<Text dimColor wrap="truncate">
					filter: {filter} (/ to edit, esc in / to clear)
				</Text>
			) : (
				<Text> </Text>
			)}
			<Text dimColor wrap="truncate">
				{KEYS[mode.kind]}
			</Text>
		</Box>
	);
}
