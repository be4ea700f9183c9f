/** The detail view's keys as data (source/state/detail-keys.ts). */
import {describe, expect, it} from 'vitest';
import {DETAIL_BINDINGS, DETAIL_COMMANDS, detailKeyCommand, searchKeyCommand, type DetailKeyPress, type SearchKeyPress} from '../source/state/detail-keys.js';

const NONE: SearchKeyPress & DetailKeyPress = {upArrow: false, downArrow: false, pageUp: false, pageDown: false, return: false, escape: false, ctrl: false, meta: false, home: false, end: false, backspace: false, delete: false, tab: false};

describe('detailKeyCommand', () => {
	it.each([
		['', {escape: true}, 'back'],
		['q', {}, 'back'],
		['', {return: true}, 'back'],
		['', {upArrow: true}, 'line-up'],
		['k', {}, 'line-up'],
		['j', {}, 'line-down'],
		['', {pageUp: true}, 'page-up'],
		['', {pageDown: true}, 'page-down'],
		['g', {}, 'top'],
		['', {home: true}, 'top'],
		['G', {}, 'bottom'],
		['', {end: true}, 'bottom'],
		['/', {}, 'search'],
		['n', {}, 'older-match'],
		['N', {}, 'newer-match'],
		['r', {}, 'reload'],
		['p', {}, 'pause'],
		['n', {ctrl: true}, undefined],
		['x', {}, undefined],
	] as Array<[string, Partial<DetailKeyPress>, string | undefined]>)('%j %j → %s', (input, flags, command) => {
		expect(detailKeyCommand(input, {...NONE, ...flags})).toBe(command);
	});

	it('binds every command exactly once and no key twice', () => {
		expect(DETAIL_BINDINGS.map(binding => binding.command).sort()).toEqual([...DETAIL_COMMANDS].sort());
		const inputs = DETAIL_BINDINGS.flatMap(binding => binding.inputs ?? []);
		expect(new Set(inputs).size).toBe(inputs.length);
	});
});

describe('searchKeyCommand', () => {
	it.each([
		['', {return: true}, {type: 'submit'}],
		['', {escape: true}, {type: 'cancel'}],
		['', {backspace: true}, {type: 'edit', text: 'ab'}],
		['q', {}, {type: 'edit', text: 'abcq'}],
		['/', {}, {type: 'edit', text: 'abc/'}],
		['', {upArrow: true}, {type: 'none'}],
		['u', {ctrl: true}, {type: 'none'}],
	] as Array<[string, Partial<SearchKeyPress>, unknown]>)('%j %j → %j', (input, flags, command) => {
		expect(searchKeyCommand('abc', input, {...NONE, ...flags})).toEqual(command);
	});
});
