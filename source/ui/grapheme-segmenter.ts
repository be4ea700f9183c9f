/**
 * A stand-in for `new Intl.Segmenter()` (graphemes), put in place of it by kloud-tui's bundle in
 * Ink's text packages (scripts/tui-text-plugins.mjs). Node's first Intl object costs ICU's start-up,
 * 60–120 ms on this machine, and Ink's output segments every line of every frame: the first frame
 * paid it. Text made only of characters that never join into a cluster (ASCII and the control
 * characters of ANSI escapes, Latin, punctuation, arrows, box drawing, shapes, symbols) is one grapheme per
 * UTF-16 unit, so it is split here; any other text goes to a real Intl.Segmenter, made when first
 * needed. test/grapheme-segmenter.test.ts checks every one of these characters against ICU.
 */

/** Characters whose grapheme break property is Other or Control (never CR): no rule joins two of them. */
const SINGLE_UNIT_GRAPHEMES = /^[\u0000-\u000C\u000E-\u02FF\u2000-\u200B\u200E-\u20CF\u2100-\u2BFF]*$/;

type Segment = {readonly segment: string; readonly index: number; readonly input: string};
type Segments = Iterable<Segment> & {containing(index?: number): Segment | undefined};

class SingleUnitSegments implements Segments {
	private readonly input: string;

	constructor(input: string) {
		this.input = input;
	}

	containing(index = 0): Segment | undefined {
		const at = Math.trunc(Number(index)) || 0;
		return at < 0 || at >= this.input.length ? undefined : {segment: this.input[at]!, index: at, input: this.input};
	}

	*[Symbol.iterator](): Iterator<Segment> {
		for (let index = 0; index < this.input.length; index++) {
			yield {segment: this.input[index]!, index, input: this.input};
		}
	}
}

let intlSegmenter: Intl.Segmenter | undefined;

export function graphemeSegmenter(): {segment(input: string): Segments} {
	return {
		segment(input: string): Segments {
			if (SINGLE_UNIT_GRAPHEMES.test(input)) {
				return new SingleUnitSegments(input);
			}

			intlSegmenter ??= new Intl.Segmenter(undefined, {granularity: 'grapheme'});
			return intlSegmenter.segment(input);
		},
	};
}
