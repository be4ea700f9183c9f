/** The table's keys as data (source/state/table-keys.ts): which key runs which command. */
import {describe, expect, it} from 'vitest';
import {SCREENS, screenBindings, screenKeyCommand, TABLE_BINDINGS, TABLE_COMMANDS, tableKeyCommand, type KeyPress, type Screen} from '../source/state/table-keys.js';

const NONE: KeyPress = {upArrow: false, downArrow: false, pageUp: false, pageDown: false, return: false, escape: false, tab: false, ctrl: false, meta: false};

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

	it('binds every command, and no key or flag twice on one screen', () => {
		expect(new Set(TABLE_BINDINGS.map(binding => binding.command))).toEqual(new Set(TABLE_COMMANDS));
		for (const screen of SCREENS) {
			const bindings = screenBindings(screen);
			const inputs = bindings.flatMap(binding => binding.inputs ?? []);
			expect(new Set(inputs).size, `keys on ${screen}`).toBe(inputs.length);
			const flags = bindings.flatMap(binding => binding.flag ?? []);
			expect(new Set(flags).size, `flags on ${screen}`).toBe(flags.length);
		}
	});

	it('gives every binding words for the help view', () => {
		expect(TABLE_BINDINGS.filter(binding => binding.help.length < 4 || binding.label === '')).toEqual([]);
	});
});

describe('screenKeyCommand', () => {
	it.each([
		['vms', '*', {}, 'mark-all'],
		['vms', 'm', {}, 'migrate'],
		['vms', 'c', {}, 'console'],
		['vms', 'H', {}, 'screen-hosts'],
		['hosts', 'H', {}, 'screen-vms'],
		['hosts', 'c', {}, 'cordon'],
		['hosts', 'u', {}, 'uncordon'],
		['hosts', 'd', {}, 'drain'],
		['hosts', 'x', {}, undefined],
		['hosts', 'm', {}, undefined],
		['hosts', '*', {}, undefined],
		['groups', '', {return: true}, 'members'],
		['groups', 'd', {}, undefined],
		['events', '', {return: true}, undefined],
		['events', 'H', {}, 'screen-hosts'],
		['events', '1', {}, 'screen-vms'],
		['vms', '2', {}, 'screen-hosts'],
		['vms', '3', {}, 'screen-groups'],
		['hosts', '4', {}, 'screen-events'],
		['groups', '', {tab: true}, 'next-screen'],
		['events', '/', {}, 'filter'],
		['hosts', 'q', {}, 'quit'],
	] as Array<[Screen, string, Partial<KeyPress>, string | undefined]>)('%s: %j %j → %s', (screen, input, flags, command) => {
		expect(screenKeyCommand(screen, input, {...NONE, ...flags})).toBe(command);
	});
});
