/** The detail view's console scrollback and search (source/state/scrollback.ts): a pure reducer. */
import {describe, expect, it} from 'vitest';
import {consoleLines, describeSearch, INITIAL_SCROLLBACK, matchingLines, matchRanges, scrollbackReducer, visibleLines, type Scrollback, type ScrollbackAction, type ScrollFrame} from '../source/state/scrollback.js';

/** 100 lines, "line 0" … "line 99"; every tenth also says "tick". */
const LINES = Array.from({length: 100}, (_, index) => `line ${index}${index % 10 === 0 ? ' tick' : ''}`);
const FRAME: ScrollFrame = {lines: LINES, height: 10};
const at = (patch: Partial<Scrollback>): Scrollback => ({...INITIAL_SCROLLBACK, ...patch});
const run = (state: Scrollback, ...actions: ScrollbackAction[]): Scrollback => actions.reduce((current, action) => scrollbackReducer(current, action, FRAME), state);

describe('consoleLines', () => {
	it('drops CRs, escape sequences and the empty line after the last newline', () => {
		expect(consoleLines('a\r\nb\u001B[6n\r\n\u001B[1;32mc\u001B[0m')).toEqual(['a', 'b', 'c']);
		expect(consoleLines('')).toEqual([]);
		expect(consoleLines('one\n\ntwo\n')).toEqual(['one', '', 'two']);
	});
});

describe('scrolling', () => {
	it.each([
		{name: 'the tail by default', state: INITIAL_SCROLLBACK, actions: [], window: [90, 100]},
		{name: 'a line up', state: INITIAL_SCROLLBACK, actions: [{type: 'scroll', lines: 1}], window: [89, 99]},
		{name: 'a page up keeps one line of the last screen', state: INITIAL_SCROLLBACK, actions: [{type: 'page', pages: 1}], window: [81, 91]},
		{name: 'two pages up, one down', state: INITIAL_SCROLLBACK, actions: [{type: 'page', pages: 2}, {type: 'page', pages: -1}], window: [81, 91]},
		{name: 'g: the oldest screen', state: INITIAL_SCROLLBACK, actions: [{type: 'top'}], window: [0, 10]},
		{name: 'no further than the oldest line', state: INITIAL_SCROLLBACK, actions: [{type: 'page', pages: 50}], window: [0, 10]},
		{name: 'no further down than the tail', state: at({offset: 3}), actions: [{type: 'scroll', lines: -10}], window: [90, 100]},
		{name: 'G: back to the tail', state: at({offset: 42}), actions: [{type: 'bottom'}], window: [90, 100]},
	] as Array<{name: string; state: Scrollback; actions: ScrollbackAction[]; window: [number, number]}>)('$name', ({state, actions, window}) => {
		const {from, to} = visibleLines(run(state, ...actions), FRAME);
		expect([from, to]).toEqual(window);
	});

	it('a console shorter than the screen does not scroll', () => {
		const short: ScrollFrame = {lines: ['a', 'b'], height: 10};
		expect(scrollbackReducer(INITIAL_SCROLLBACK, {type: 'page', pages: 1}, short)).toBe(INITIAL_SCROLLBACK);
		expect(visibleLines(INITIAL_SCROLLBACK, short)).toEqual({from: 0, to: 2, offset: 0});
	});

	it('a no-op returns the same state object', () => {
		expect(run(INITIAL_SCROLLBACK, {type: 'bottom'})).toBe(INITIAL_SCROLLBACK);
		expect(run(INITIAL_SCROLLBACK, {type: 'scroll', lines: -1})).toBe(INITIAL_SCROLLBACK);
		expect(run(INITIAL_SCROLLBACK, {type: 'search-edit', text: 'x'})).toBe(INITIAL_SCROLLBACK);
		expect(run(INITIAL_SCROLLBACK, {type: 'search-cancel'})).toBe(INITIAL_SCROLLBACK);
	});

	it('an offset beyond a console that shrank shows its oldest screen', () => {
		expect(visibleLines(at({offset: 500}), FRAME)).toEqual({from: 0, to: 10, offset: 90});
	});
});

describe('search', () => {
	const search = (query: string, state = INITIAL_SCROLLBACK) => run(state, {type: 'search-open'}, {type: 'search-edit', text: query}, {type: 'search-submit'});

	it('finds plain text in any case, oldest first, and where in the line', () => {
		expect(matchingLines(LINES, 'TICK')).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
		expect(matchingLines(LINES, '')).toEqual([]);
		expect(matchingLines(['a.b', 'axb'], '.')).toEqual([0]);
		expect(matchRanges('Tick tock TICK', 'tick')).toEqual([[0, 4], [10, 14]]);
	});

	it('/ searches upwards from the bottom of the screen: the newest match on or above it', () => {
		const found = search('tick');
		expect(found).toMatchObject({draft: null, query: 'tick', match: 90, offset: 0});
		// Scrolled to lines 41–50, the search starts there.
		const fromMiddle = search('tick', at({offset: 50}));
		expect(fromMiddle.match).toBe(40);
		expect(visibleLines(fromMiddle, FRAME)).toMatchObject({from: 40, to: 50});
	});

	it('n goes to older matches, N to newer ones, bringing each on screen and wrapping around', () => {
		let state = search('tick');
		state = run(state, {type: 'match', direction: 'older'});
		expect(state.match).toBe(80);
		const {from, to} = visibleLines(state, FRAME);
		expect(80 >= from && 80 < to).toBe(true);
		state = run(state, ...Array.from({length: 8}, () => ({type: 'match', direction: 'older'}) as const));
		expect(state.match).toBe(0);
		expect(run(state, {type: 'match', direction: 'older'}).match).toBe(90);
		expect(run(state, {type: 'match', direction: 'newer'}).match).toBe(10);
		expect(describeSearch(run(state, {type: 'match', direction: 'newer'}), LINES)).toBe('/tick: match 9 of 10 (n older, N newer)');
	});

	it('a match already on screen does not move the view', () => {
		const state = search('line 95');
		expect(state).toMatchObject({match: 95, offset: 0});
	});

	it('no match: said so, the view stays; Esc while typing keeps the last search', () => {
		const none = search('nothing', at({offset: 5}));
		expect(none).toMatchObject({query: 'nothing', match: null, offset: 5});
		expect(describeSearch(none, LINES)).toBe('/nothing: no match');
		expect(run(none, {type: 'match', direction: 'older'})).toBe(none);
		const typing = run(search('tick'), {type: 'search-open'}, {type: 'search-edit', text: 'lin'}, {type: 'search-cancel'});
		expect(typing).toMatchObject({draft: null, query: 'tick', match: 90});
		expect(describeSearch(INITIAL_SCROLLBACK, LINES)).toBe('');
	});
});
