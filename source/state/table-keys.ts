/**
 * The table's keys as data: which key runs which command, read by the TUI's key handler and
 * tested table-driven. Pure: a key is described by the flags the terminal library sets.
 */

/** The flags of a key press this table reads (a subset of Ink's `Key`). */
export type KeyPress = {
	readonly upArrow: boolean;
	readonly downArrow: boolean;
	readonly pageUp: boolean;
	readonly pageDown: boolean;
	readonly return: boolean;
	readonly escape: boolean;
	readonly ctrl: boolean;
	readonly meta: boolean;
};

export const TABLE_COMMANDS = [
	'up', 'down', 'page-up', 'page-down', 'first', 'last', 'mark',
	'new', 'stop', 'kill', 'boot', 'reboot', 'delete',
	'filter', 'sort', 'reverse-sort', 'details', 'console', 'pause', 'refresh', 'help', 'quit', 'clear',
] as const;
export type TableCommand = (typeof TABLE_COMMANDS)[number];

type Binding = {readonly command: TableCommand; readonly inputs?: readonly string[]; readonly flag?: Exclude<keyof KeyPress, 'ctrl' | 'meta'>};

/** Every table key. Lifecycle keys that lose something (`K`, `R`, `D`, `x`) ask y/N first. */
export const TABLE_BINDINGS: readonly Binding[] = [
	{command: 'up', inputs: ['k'], flag: 'upArrow'},
	{command: 'down', inputs: ['j'], flag: 'downArrow'},
	{command: 'page-up', flag: 'pageUp'},
	{command: 'page-down', flag: 'pageDown'},
	{command: 'first', inputs: ['g']},
	{command: 'last', inputs: ['G']},
	{command: 'mark', inputs: [' ']},
	{command: 'new', inputs: ['n']},
	{command: 'stop', inputs: ['x']},
	{command: 'kill', inputs: ['K']},
	{command: 'boot', inputs: ['b']},
	{command: 'reboot', inputs: ['R']},
	{command: 'delete', inputs: ['D']},
	{command: 'filter', inputs: ['/']},
	{command: 'sort', inputs: ['s']},
	{command: 'reverse-sort', inputs: ['S']},
	{command: 'details', flag: 'return'},
	{command: 'console', inputs: ['c']},
	{command: 'pause', inputs: ['p']},
	{command: 'refresh', inputs: ['r']},
	{command: 'help', inputs: ['?']},
	{command: 'quit', inputs: ['q']},
	{command: 'clear', flag: 'escape'},
];

/** The command a key runs in the table, or undefined for a key that does nothing there. */
export function tableKeyCommand(input: string, key: KeyPress): TableCommand | undefined {
	const flagged = TABLE_BINDINGS.find(binding => binding.flag !== undefined && key[binding.flag]);
	if (flagged) {
		return flagged.command;
	}

	if (key.ctrl || key.meta) {
		return undefined;
	}

	return TABLE_BINDINGS.find(binding => binding.inputs?.includes(input))?.command;
}
