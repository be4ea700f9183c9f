/**
 * The detail view's console as a scrollable, searchable tail: pure state, a reducer and the
 * selectors the view renders from. The view follows the tail while it is at the bottom (offset 0);
 * scrolled up it holds still. A search (`/`) looks for plain text, ignoring case, upwards from the
 * bottom of the screen; `n` goes on to the next older match, `N` back to the next newer one, and
 * both wrap around.
 */

export type Scrollback = {
	/** Lines the view is scrolled up from the tail; 0 follows the tail. */
	readonly offset: number;
	/** The search being typed after `/`; null when none is being typed. */
	readonly draft: string | null;
	/** The last search submitted; '' for none. */
	readonly query: string;
	/** The line of the current match, or null (no search, or no line matches). */
	readonly match: number | null;
};

export const INITIAL_SCROLLBACK: Scrollback = {offset: 0, draft: null, query: '', match: null};

export type ScrollbackAction =
	| {readonly type: 'scroll'; readonly lines: number}
	| {readonly type: 'page'; readonly pages: number}
	| {readonly type: 'top'}
	| {readonly type: 'bottom'}
	| {readonly type: 'search-open'}
	| {readonly type: 'search-edit'; readonly text: string}
	| {readonly type: 'search-cancel'}
	| {readonly type: 'search-submit'}
	| {readonly type: 'match'; readonly direction: 'older' | 'newer'};

/** What the reducer needs to know of the screen: the console's lines and how many of them show. */
export type ScrollFrame = {readonly lines: readonly string[]; readonly height: number};

/** A console's text as lines to show: no CRs, no terminal escape sequences, no empty last line. */
export function consoleLines(text: string): string[] {
	const lines = text
		.replace(/\r/g, '')
		// Drop terminal escape sequences a guest may print: they would move our cursor.
		.replace(/\u001B\[[\d;?]*[A-Za-z]/g, '')
		.split('\n');
	if (lines.at(-1) === '') {
		lines.pop();
	}

	return lines;
}

/** The largest offset that still fills the screen. */
function maxOffset(frame: ScrollFrame): number {
	return Math.max(0, frame.lines.length - Math.max(1, frame.height));
}

function clampOffset(offset: number, frame: ScrollFrame): number {
	return Math.max(0, Math.min(maxOffset(frame), offset));
}

/** The lines on screen: `from` (inclusive) to `to` (exclusive), and the offset actually shown. */
export function visibleLines(state: Scrollback, frame: ScrollFrame): {readonly from: number; readonly to: number; readonly offset: number} {
	const offset = clampOffset(state.offset, frame);
	const to = frame.lines.length - offset;
	return {from: Math.max(0, to - Math.max(1, frame.height)), to, offset};
}

/** The lines that contain `query` (plain text, any case), oldest first. */
export function matchingLines(lines: readonly string[], query: string): number[] {
	if (query === '') {
		return [];
	}

	const needle = query.toLowerCase();
	return lines.flatMap((line, index) => (line.toLowerCase().includes(needle) ? [index] : []));
}

/** Where `query` occurs in `line` (any case), as [start, end) pairs, for highlighting. */
export function matchRanges(line: string, query: string): Array<readonly [number, number]> {
	if (query === '') {
		return [];
	}

	const haystack = line.toLowerCase();
	const needle = query.toLowerCase();
	const ranges: Array<readonly [number, number]> = [];
	for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length)) {
		ranges.push([at, at + needle.length]);
	}

	return ranges;
}

/** The offset that shows line `index`: unchanged when it is on screen, else with it in the middle. */
function revealLine(state: Scrollback, frame: ScrollFrame, index: number): number {
	const {from, to, offset} = visibleLines(state, frame);
	if (index >= from && index < to) {
		return offset;
	}

	return clampOffset(frame.lines.length - index - Math.ceil(Math.max(1, frame.height) / 2), frame);
}

function withOffset(state: Scrollback, offset: number): Scrollback {
	return offset === state.offset ? state : {...state, offset};
}

export function scrollbackReducer(state: Scrollback, action: ScrollbackAction, frame: ScrollFrame): Scrollback {
	switch (action.type) {
		case 'scroll': {
			return withOffset(state, clampOffset(clampOffset(state.offset, frame) + action.lines, frame));
		}

		case 'page': {
			return withOffset(state, clampOffset(clampOffset(state.offset, frame) + action.pages * Math.max(1, frame.height - 1), frame));
		}

		case 'top': {
			return withOffset(state, maxOffset(frame));
		}

		case 'bottom': {
			return withOffset(state, 0);
		}

		case 'search-open': {
			return {...state, draft: ''};
		}

		case 'search-edit': {
			return state.draft === null ? state : {...state, draft: action.text};
		}

		case 'search-cancel': {
			return state.draft === null ? state : {...state, draft: null};
		}

		case 'search-submit': {
			if (state.draft === null) {
				return state;
			}

			const query = state.draft;
			const matches = matchingLines(frame.lines, query);
			if (matches.length === 0) {
				return {...state, draft: null, query, match: null};
			}

			// The newest match at or above the screen's last line; else the newest of all.
			const {to} = visibleLines(state, frame);
			const match = matches.findLast(index => index < to) ?? matches.at(-1)!;
			const next = {...state, draft: null, query, match};
			return {...next, offset: revealLine(next, frame, match)};
		}

		case 'match': {
			const matches = matchingLines(frame.lines, state.query);
			if (matches.length === 0) {
				return state.match === null ? state : {...state, match: null};
			}

			const current = state.match ?? frame.lines.length;
			const match =
				action.direction === 'older'
					? (matches.findLast(index => index < current) ?? matches.at(-1)!)
					: (matches.find(index => index > current) ?? matches[0]!);
			return {...state, match, offset: revealLine(state, frame, match)};
		}
	}
}

/** "match 3 of 17", "no match", or '' without a search: for the footer. */
export function describeSearch(state: Scrollback, lines: readonly string[]): string {
	if (state.query === '') {
		return '';
	}

	const matches = matchingLines(lines, state.query);
	if (matches.length === 0 || state.match === null) {
		return `/${state.query}: no match`;
	}

	const index = matches.indexOf(state.match);
	if (index === -1) {
		return `/${state.query}: ${matches.length} ${matches.length === 1 ? 'match' : 'matches'} (n older, N newer)`;
	}

	// Counted from the newest, the direction the search goes.
	const position = matches.length - index;
	return `/${state.query}: match ${position} of ${matches.length} (n older, N newer)`;
}
