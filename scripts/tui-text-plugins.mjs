/**
 * esbuild plugins for the TUI's bundle (scripts/bundle.mjs) that keep Ink's text measuring from
 * costing its first frame ≈ 0.2 s of set-up it rarely needs, with the same results:
 *
 * - string-width builds `/^\p{RGI_Emoji}$/v` when it loads, a set of several thousand emoji
 *   sequences that took V8 85–120 ms here. It is built on first use instead, and only tried on a
 *   cluster that can be an RGI emoji at all: every one holds a code point with Emoji_Presentation or
 *   the emoji variation selector U+FE0F (basic emoji, flags, keycaps, modifier, tag and ZWJ
 *   sequences alike), so frames without emoji never build it.
 * - string-width (two versions), slice-ansi and ansi-tokenize each make an `Intl.Segmenter` when
 *   they load; Node's first Intl object costs ICU's start-up (60–120 ms here). Each gets
 *   source/ui/grapheme-segmenter.ts instead, which splits plain text itself and makes the
 *   Intl.Segmenter only for text that needs it.
 *
 * Every rewrite must find its text, so a changed package fails the build instead of shipping
 * unpatched. test/tui-text.test.ts checks the results match the packages' own.
 */
import {readFile} from 'node:fs/promises';
import {fileURLToPath} from 'node:url';

const SEGMENTER_MODULE = fileURLToPath(new URL('../dist/source/ui/grapheme-segmenter.js', import.meta.url));
const RGI_EMOJI = 'const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;';
const LAZY_RGI_EMOJI = `let rgiEmojiRegexBuilt;
const rgiEmojiCandidateRegex = /[\\p{Emoji_Presentation}\\uFE0F]/u;
const rgiEmojiRegex = {test: segment => rgiEmojiCandidateRegex.test(segment) && (rgiEmojiRegexBuilt ??= new RegExp('^\\\\p{RGI_Emoji}$', 'v')).test(segment)};`;
const NEW_SEGMENTER = /new Intl\.Segmenter\((?:undefined,\s*\{\s*granularity:\s*["']grapheme["']\s*\})?\)/g;

/** The packages rewritten, by the end of their path, and the segmenters each makes. */
const SEGMENTING = [
	{file: '/node_modules/string-width/index.js', segmenters: 1, rgiEmoji: true},
	{file: '/node_modules/wrap-ansi/node_modules/string-width/index.js', segmenters: 1},
	{file: '/node_modules/slice-ansi/tokenize-ansi.js', segmenters: 1},
	{file: '/node_modules/@alcalzone/ansi-tokenize/build/tokenize.js', segmenters: 1},
];

/** `text` rewritten (`path` is a module of SEGMENTING). */
export function rewriteTextModule(text, path) {
	// The longest match: wrap-ansi's own string-width ends like the top-level one.
	const entry = SEGMENTING.filter(({file}) => path.endsWith(file)).sort((a, b) => b.file.length - a.file.length)[0];
	const found = text.match(NEW_SEGMENTER)?.length ?? 0;
	if (found !== entry.segmenters) {
		throw new Error(`${path}: expected ${entry.segmenters} grapheme Intl.Segmenter, found ${found} (did the package change?)`);
	}

	let rewritten = `import {graphemeSegmenter as kloudGraphemeSegmenter} from ${JSON.stringify(SEGMENTER_MODULE)};\n${text.replace(NEW_SEGMENTER, 'kloudGraphemeSegmenter()')}`;
	if (entry.rgiEmoji) {
		if (!rewritten.includes(RGI_EMOJI)) {
			throw new Error(`${path}: no RGI_Emoji regex (did string-width change?)`);
		}

		// A function: the replacement's `$'` is text, not a pattern.
		rewritten = rewritten.replace(RGI_EMOJI, () => LAZY_RGI_EMOJI);
	}

	if (rewritten.includes('Intl.Segmenter')) {
		throw new Error(`${path}: an Intl.Segmenter left (did the package change?)`);
	}

	return rewritten;
}

export const lazyTextSetUp = {
	name: 'lazy-text-set-up',
	setup(build) {
		const filter = new RegExp(`(${SEGMENTING.map(({file}) => file.replaceAll(/[./@]/g, '\\$&')).join('|')})$`);
		build.onLoad({filter}, async ({path}) => ({contents: rewriteTextModule(await readFile(path, 'utf8'), path), loader: 'js'}));
	},
};
