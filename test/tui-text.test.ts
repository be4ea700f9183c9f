/**
 * The TUI's bundle measures and splits text with Ink's own packages, rewritten so that plain text
 * needs neither ICU's start-up nor string-width's RGI_Emoji set (scripts/tui-text-plugins.mjs,
 * source/ui/grapheme-segmenter.ts). What the operator sees depends on those results being the
 * packages' own: a width off by one shifts every column of the table after it.
 */
import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {tokenize} from '@alcalzone/ansi-tokenize';
import {build, type Plugin} from 'esbuild';
import sliceAnsi from 'slice-ansi';
import stringWidth from 'string-width';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {graphemeSegmenter} from '../source/ui/grapheme-segmenter.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Rewritten = {
	readonly stringWidth: typeof stringWidth;
	readonly sliceAnsi: typeof sliceAnsi;
	readonly tokenize: typeof tokenize;
};

let dir: string;
let rewritten: Rewritten;

beforeAll(async () => {
	// The packages as the TUI's bundle holds them.
	const {lazyTextSetUp} = (await import(pathToFileURL(join(ROOT, 'scripts/tui-text-plugins.mjs')).href)) as {lazyTextSetUp: Plugin};
	dir = await mkdtemp(join(tmpdir(), 'kl-text-'));
	const outfile = join(dir, 'text.mjs');
	await build({
		stdin: {
			contents: "export {default as stringWidth} from 'string-width'; export {default as sliceAnsi} from 'slice-ansi'; export {tokenize} from '@alcalzone/ansi-tokenize'; import 'wrap-ansi';",
			resolveDir: ROOT,
		},
		outfile,
		bundle: true,
		format: 'esm',
		platform: 'node',
		plugins: [lazyTextSetUp],
		logLevel: 'error',
	});
	rewritten = (await import(pathToFileURL(outfile).href)) as Rewritten;
});

afterAll(async () => {
	await rm(dir, {recursive: true, force: true});
});

const intl = new Intl.Segmenter(undefined, {granularity: 'grapheme'});
const segmentsOf = (segments: Iterable<{segment: string; index: number}>) => [...segments].map(({segment, index}) => [segment, index]);

const SAMPLES = [
	'kloud ○ connecting · amqp://guest:***@127.0.0.1:5672 ns kloud',
	'\u001B[1mkloud\u001B[22m \u001B[33m○ connecting\u001B[39m · ─────┬──── ▲▼ ↑↓ … café naïve',
	'日本語のテキスト and ｶﾀｶﾅ ﾞﾟ',
	'👍 👍🏽 🇩🇪 🏴󠁧󠁢󠁥󠁮󠁧󠁿 👨‍👩‍👧 1️⃣ #⃣ ☺ ☺️ ⛹️‍♀️ ✔ ✔️',
	'e\u0301 a\u0308\u0323 \u1100\u1161\u11A8 \uAC00\u11A8 \r\n \u200B\u200D\u2060 \u00AD',
	'\u001B]8;;https://example.com\u0007link\u001B]8;;\u0007 \u001B[38;2;1;2;3mrgb\u001B[0m',
];

describe('the grapheme segmenter in place of Intl.Segmenter', () => {
	it('splits every character it splits itself as ICU does, in every neighbourhood that could join it', () => {
		for (let codePoint = 0; codePoint <= 0x2c00; codePoint++) {
			const character = String.fromCodePoint(codePoint);
			for (const text of [`a${character}a`, `${character}${character}`, `${character}\n`, `\r${character}`, `${character}\r\n`, `${character}\u0301`, `\u1100${character}`]) {
				expect(segmentsOf(graphemeSegmenter().segment(text)), `U+${codePoint.toString(16)} in ${JSON.stringify(text)}`).toEqual(segmentsOf(intl.segment(text)));
			}
		}
	});

	it('splits any other text, and finds the segment containing an index, as ICU does', () => {
		for (const text of SAMPLES) {
			const segments = graphemeSegmenter().segment(text);
			expect(segmentsOf(segments)).toEqual(segmentsOf(intl.segment(text)));
			for (let index = -1; index <= text.length; index++) {
				const [ours, theirs] = [segments.containing(index), intl.segment(text).containing(index)];
				expect(ours && [ours.segment, ours.index], `${JSON.stringify(text)} at ${index}`).toEqual(theirs && [theirs.segment, theirs.index]);
			}
		}
	});
});

describe('Ink\'s text packages as the TUI\'s bundle holds them', () => {
	it('measure every character the rewrites touch as string-width does: the plain ones it splits itself, and every emoji', {timeout: 60_000}, () => {
		// A single character can be an RGI emoji only if it has one of these properties (and only then is the set tried).
		const emojiLike = /[\p{Emoji}\p{Emoji_Component}\p{Extended_Pictographic}]/u;
		for (let codePoint = 0; codePoint <= 0x10ffff; codePoint++) {
			const character = String.fromCodePoint(codePoint);
			if ((codePoint >= 0xd800 && codePoint <= 0xdfff) || (codePoint > 0x2c00 && !emojiLike.test(character))) {
				continue;
			}

			if (rewritten.stringWidth(character) !== stringWidth(character)) {
				expect.fail(`U+${codePoint.toString(16)}: ${rewritten.stringWidth(character)} against string-width's ${stringWidth(character)}`);
			}
		}
	});

	it('measure, tokenize and slice text with emoji, marks, CJK and escapes as the packages do', () => {
		for (const text of SAMPLES) {
			expect(rewritten.stringWidth(text), text).toBe(stringWidth(text));
			expect(rewritten.stringWidth(text, {ambiguousIsNarrow: false}), text).toBe(stringWidth(text, {ambiguousIsNarrow: false}));
			expect(rewritten.tokenize(text), text).toEqual(tokenize(text));
			for (const [start, end] of [[0, 5], [3, 12], [10, 40]] as const) {
				expect(rewritten.sliceAnsi(text, start, end), `${text} ${start}..${end}`).toBe(sliceAnsi(text, start, end));
			}
		}

		// Emoji sequences (each is one cluster of width 2), with and without the set built.
		for (const emoji of ['👍', '👍🏽', '🇩🇪', '🏴󠁧󠁢󠁥󠁮󠁧󠁿', '👨‍👩‍👧', '1️⃣', '☺️', '⛹️‍♀️', '✔️', '🏳️‍🌈']) {
			expect(rewritten.stringWidth(emoji), emoji).toBe(stringWidth(emoji));
		}
	});
});
