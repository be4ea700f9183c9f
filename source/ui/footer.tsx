/** The message line (results, errors, a filter's hint) and the keys that work right now. */
import {Box, Text} from 'ink';
import type {Screen} from '../state/table-keys.js';
import type {Message, Mode} from '../state/view.js';
import {color} from './theme.js';

const SCREEN_KEYS: Record<Screen, string> = {
	vms: '↑↓ move  space/* mark  n new  b boot  x stop  K kill  R reboot  D delete  m migrate  ⏎ details  / filter  1-4/H views  ? help  q quit',
	hosts: '↑↓ move  c cordon  u uncordon  d drain  / filter  1 VMs  3 groups  4 events  H back  ? help  q quit',
	groups: '↑↓ move  ⏎ members  / filter  1 VMs  2 hosts  4 events  ? help  q quit',
	events: '↑↓ move  / filter (kind: type: host: vm: group: user:)  1 VMs  2 hosts  3 groups  ? help  q quit',
};

const MODE_KEYS: Record<Exclude<Mode['kind'], 'table'>, string> = {
	filter: 'type to filter (field:value terms, e.g. state:crashed host:host-a)  ⏎ keep  esc clear',
	help: 'any key: back',
	detail: 'esc/q back  ↑↓/jk PgUp/PgDn g/G scroll  / search  n/N older/newer match  r reload  p pause following',
	confirm: 'y confirm  (reboot: h hard reset)  any other key: cancel',
	'confirm-migrate': 'y migrate  any other key: cancel',
	'confirm-host': 'y confirm  any other key: cancel',
	migrate: '↑↓ host  ⏎ migrate there (asks y/N)  esc cancel',
	start: '↑↓ image  tab next field  ⏎ start  esc cancel',
};

export type FooterProps = {
	readonly message: Message | null;
	readonly mode: Mode;
	readonly screen: Screen;
	readonly filter: string;
	/** Said under the filter when it names a field the screen lacks. */
	readonly filterHint: string | undefined;
	/** The detail view's search and where it is (`describeSearch`); '' for none. */
	readonly search?: string;
};

export function Footer({message, mode, screen, filter, filterHint, search = ''}: FooterProps) {
	const keys = mode.kind === 'table' ? SCREEN_KEYS[screen] : MODE_KEYS[mode.kind];
	const draft = mode.kind === 'detail' ? mode.scrollback.draft : null;
	return (
		<Box flexDirection="column">
			{mode.kind === 'filter' || draft !== null ? (
				<Text wrap="truncate">
					/{draft ?? filter}
					<Text inverse> </Text>
				</Text>
			) : message ? (
				<Text color={message.isError ? color('red') : color('green')} wrap="truncate">
					{message.text}
				</Text>
			) : search ? (
				<Text wrap="truncate">{search}</Text>
			) : filter ? (
				<Text dimColor={filterHint === undefined} color={filterHint === undefined ? undefined : color('yellow')} wrap="truncate">
					filter: {filter} (/ to edit, esc in / to clear){filterHint === undefined ? '' : ` · ${filterHint}`}
				</Text>
			) : (
				<Text> </Text>
			)}
			{mode.kind === 'filter' && filterHint !== undefined ? (
				<Text color={color('yellow')} wrap="truncate">
					{filterHint}
				</Text>
			) : (
				<Text dimColor wrap="truncate">
					{keys}
				</Text>
			)}
		</Box>
	);
}
