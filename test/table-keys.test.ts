/** The table's keys as data (source/state/table-keys.ts): which key runs which command. */
import {describe, expect, it} from 'vitest';
import {TABLE_BINDINGS, TABLE_COMMANDS, tableKeyCommand, type KeyPress} from '../source/state/table-keys.js';

const NONE: KeyPress = {upArrow: false, downArrow: false, pageUp: false, pageDown: false, return: false, escape: false, ctrl: false, meta: false};

describe('tableKeyCommand', () => {
	it.each([
		['b', {}, 'boot'],
		['R', {}, 'reboot'],
		['D', {}, 'delete'],
		['x', {}, 'stop'],
		['K', {}, 'kill'],
		['n', {}, 'new'],
		['k', {}, 'up'],
		['', {upArrow: true}, 'up'],
		['', {pageDown: true}, 'page-down'],
		['', {return: true}, 'details'],
		['', {escape: true}, 'clear'],
		[' ', {}, 'mark'],
		['d', {}, undefined],
		['r', {}, 'refresh'],
		['D', {ctrl: true}, undefined],
		['z', {}, undefined],
	] as Array<[string, Partial<KeyPress>, string | undefined]>)('%j %j → %s', (input, flags, command) => {
		expect(tableKeyCommand(input, {...NONE, ...flags})).toBe(command);
	});

	it('binds every command exactly once and no key twice', () => {
		expect(TABLE_BINDINGS.map(binding => binding.command).sort()).toEqual([...TABLE_COMMANDS].sort());
		const inputs = TABLE_BINDINGS.flatMap(binding => binding.inputs ?? []);
		expect(new Set(inputs).size).toBe(inputs.length);
	});
});
