/**
 * Keys as the user typed them. A terminal read can hold several keystrokes at once (fast typing,
 * a loaded machine, SSH batching keys over a slow link): Ink hands such a chunk over as one input
 * string, so "/abc" would reach the table as one unknown key instead of `/` (filter) then "abc".
 * `typedKeys` cuts such a chunk back into one key per character, each with the flags Ink would
 * have set had it come alone. Escape sequences (arrows, function keys) are Ink's own single events
 * and pass through unchanged.
 */
import type {Key} from 'ink';

const NO_KEY: Key = {
	upArrow: false,
	downArrow: false,
	leftArrow: false,
	rightArrow: false,
	pageDown: false,
	pageUp: false,
	home: false,
	end: false,
	return: false,
	escape: false,
	ctrl: false,
	shift: false,
	tab: false,
	backspace: false,
	delete: false,
	meta: false,
	super: false,
	hyper: false,
	capsLock: false,
	numLock: false,
};

/** One character typed alone, as Ink describes it. */
function keyOf(char: string): [string, Key] {
	switch (char) {
		case '\r':
		case '\n': {
			return ['', {...NO_KEY, return: true}];
		}

		case '\t': {
			return ['', {...NO_KEY, tab: true}];
		}

		case '\u007F':
		case '\b': {
			return ['', {...NO_KEY, backspace: true}];
		}

		default: {
			const code = char.codePointAt(0)!;
			// Control characters: ctrl + their letter (ctrl-c is \u0003), as Ink reports them.
			if (code >= 1 && code <= 26) {
				return [String.fromCodePoint(code + 96), {...NO_KEY, ctrl: true}];
			}

			return [char, {...NO_KEY, shift: /^[A-Z]$/.test(char)}];
		}
	}
}

/** The keystrokes in one input event: itself, or each character of a chunk of plain typing. */
export function typedKeys(input: string, key: Key): Array<[string, Key]> {
	const chars = [...input];
	const isChunk = chars.length > 1 && !key.ctrl && !key.meta && !input.includes('\u001B');
	return isChunk ? chars.map(char => keyOf(char)) : [[input, key]];
}
