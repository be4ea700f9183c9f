/**
 * The detail view's keys as data, read by the TUI's key handler and tested table-driven. Pure. While
 * a search is being typed (after `/`) keys edit it instead: see `searchKeyCommand`.
 */
import type {ScrollbackAction} from './scrollback.js';
import type {KeyPress} from './table-keys.js';

export const DETAIL_COMMANDS = ['back', 'reload', 'pause', 'line-up', 'line-down', 'page-up', 'page-down', 'top', 'bottom', 'search', 'older-match', 'newer-match'] as const;
export type DetailCommand = (typeof DETAIL_COMMANDS)[number];

/** The detail commands that move or search the scrollback, as the scrollback reducer's actions. */
export const SCROLLBACK_ACTIONS: Readonly<Partial<Record<DetailCommand, ScrollbackAction>>> = {
	'line-up': {type: 'scroll', lines: 1},
	'line-down': {type: 'scroll', lines: -1},
	'page-up': {type: 'page', pages: 1},
	'page-down': {type: 'page', pages: -1},
	top: {type: 'top'},
	bottom: {type: 'bottom'},
	search: {type: 'search-open'},
	'older-match': {type: 'match', direction: 'older'},
	'newer-match': {type: 'match', direction: 'newer'},
};

/** The flags of a key press the detail view reads: the table's and Home/End. */
export type DetailKeyPress = KeyPress & {readonly home: boolean; readonly end: boolean};

type Binding = {readonly command: DetailCommand; readonly inputs?: readonly string[]; readonly flags?: ReadonlyArray<Exclude<keyof DetailKeyPress, 'ctrl' | 'meta'>>};

/** Every detail key: the scrollback keys are less's and vim's. */
export const DETAIL_BINDINGS: readonly Binding[] = [
	{command: 'back', inputs: ['q'], flags: ['escape', 'return']},
	{command: 'reload', inputs: ['r']},
	{command: 'pause', inputs: ['p']},
	{command: 'line-up', inputs: ['k'], flags: ['upArrow']},
	{command: 'line-down', inputs: ['j'], flags: ['downArrow']},
	{command: 'page-up', inputs: ['b'], flags: ['pageUp']},
	{command: 'page-down', inputs: [' '], flags: ['pageDown']},
	{command: 'top', inputs: ['g'], flags: ['home']},
	{command: 'bottom', inputs: ['G'], flags: ['end']},
	{command: 'search', inputs: ['/']},
	{command: 'older-match', inputs: ['n']},
	{command: 'newer-match', inputs: ['N']},
];

/** The command a key runs in the detail view, or undefined for a key that does nothing there. */
export function detailKeyCommand(input: string, key: DetailKeyPress): DetailCommand | undefined {
	const flagged = DETAIL_BINDINGS.find(binding => binding.flags?.some(flag => key[flag]));
	if (flagged) {
		return flagged.command;
	}

	if (key.ctrl || key.meta) {
		return undefined;
	}

	return DETAIL_BINDINGS.find(binding => binding.inputs?.includes(input))?.command;
}

/** What a key does to the search being typed. */
export type SearchKeyCommand = {readonly type: 'submit'} | {readonly type: 'cancel'} | {readonly type: 'edit'; readonly text: string} | {readonly type: 'none'};

/** The flags of a key press the search line reads besides `KeyPress`'s. */
export type SearchKeyPress = KeyPress & {readonly backspace: boolean; readonly delete: boolean};

/** A key typed into the search line (after `/`): Enter searches, Esc gives up, backspace deletes. */
export function searchKeyCommand(draft: string, input: string, key: SearchKeyPress): SearchKeyCommand {
	if (key.return) {
		return {type: 'submit'};
	}

	if (key.escape) {
		return {type: 'cancel'};
	}

	if (key.backspace || key.delete) {
		return {type: 'edit', text: draft.slice(0, -1)};
	}

	if (input === '' || key.ctrl || key.meta || key.upArrow || key.downArrow || key.pageUp || key.pageDown) {
		return {type: 'none'};
	}

	return {type: 'edit', text: draft + input};
}
