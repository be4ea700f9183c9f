/** The detail view's console: the tail, scrollback and `/` search, driven by keys against a fake feed. */
import {afterEach, describe, expect, it} from 'vitest';
import chalk from 'chalk';
import {cleanup} from 'ink-testing-library';
import {KEYS, makeVm, renderTui, snapshot} from '../helpers/tui.js';

afterEach(() => {
	cleanup();
});

/** 300 console lines, more than a screen holds; every 50th says "boot stage". */
const CONSOLE = Array.from({length: 300}, (_, index) => `guest line ${String(index).padStart(3, '0')}${index % 50 === 0 ? ` boot stage ${index / 50}` : ''}`).join('\r\n') + '\r\n';

/** The numbers of the console lines on screen, in order. */
const shownLines = (frame: string): number[] => [...frame.matchAll(/guest line (\d{3})/g)].map(match => Number(match[1]));

async function openDetails(options: {readonly consoleFollowMs?: number} = {}) {
	const tui = renderTui([snapshot('host-a', [makeVm('vm-aaaaaaaa', 'host-a')])], [], options);
	tui.actions.consoleText = CONSOLE;
	await tui.waitFor(text => text.includes('vm-aaaaaaaa'));
	await tui.press(KEYS.enter);
	await tui.waitFor(text => text.includes('guest line 299'), 'the tail');
	return tui;
}

describe('the detail view\'s console', () => {
	it('shows the tail, then scrolls back through more than a screen of history with PgUp, arrows, g and G', async () => {
		const tui = await openDetails();
		const tail = shownLines(tui.frame());
		expect(tail.at(-1)).toBe(299);
		const rows = tail.length;
		expect(rows).toBeGreaterThan(2);
		expect(tui.frame()).toContain('console (tail)');

		await tui.press(KEYS.pageUp);
		let frame = await tui.waitFor(text => !text.includes('guest line 299'), 'a page up');
		// A page back keeps one line of the screen before, for context.
		expect(shownLines(frame).at(-1)).toBe(299 - rows + 1);
		expect(frame).toMatch(/console \(lines \d+–\d+ of 300, held; G: back to the tail\)/);
		await tui.press(KEYS.pageUp, KEYS.pageUp, KEYS.pageUp);
		await tui.waitFor(text => shownLines(text).at(-1) === 299 - 4 * (rows - 1), 'four pages up');
		await tui.press(KEYS.up, 'k');
		await tui.waitFor(text => shownLines(text).at(-1) === 299 - 4 * (rows - 1) - 2, 'two lines up');
		await tui.press(KEYS.down);
		await tui.waitFor(text => shownLines(text).at(-1) === 299 - 4 * (rows - 1) - 1, 'a line down');
		await tui.press('g');
		frame = await tui.waitFor(text => shownLines(text)[0] === 0, 'the oldest line');
		expect(frame).toContain('guest line 000 boot stage 0');
		await tui.press(KEYS.pageDown);
		await tui.waitFor(text => shownLines(text)[0] === rows - 1, 'a page down');
		await tui.press('G');
		frame = await tui.waitFor(text => shownLines(text).at(-1) === 299, 'the tail again');
		expect(frame).toContain('console (tail)');
	});

	it('scrolled back it holds still while the guest prints on; G follows the tail again', async () => {
		const tui = await openDetails({consoleFollowMs: 20});
		await tui.press(KEYS.pageUp);
		const held = shownLines(await tui.waitFor(text => !text.includes('guest line 299'), 'a page up'));
		tui.actions.consoleText = `${CONSOLE}guest line 300 new\r\n`;
		const requests = tui.actions.calls.length;
		await new Promise(resolve => setTimeout(resolve, 150));
		expect(shownLines(tui.frame())).toEqual(held);
		// Not even asked for: following stopped.
		expect(tui.actions.calls.length).toBe(requests);
		await tui.press('G');
		await tui.waitFor(text => text.includes('guest line 300 new'), 'the new line after G');
	});

	it('/ finds text upwards from the bottom, highlights it and says where it is; n and N go older and newer', async () => {
		const tui = await openDetails();
		// One terminal read with the search key, the text and Enter, as fast typing sends it.
		await tui.press('/BOOT STAGE', KEYS.enter);
		let frame = await tui.waitFor(text => text.includes('match 1 of 6'), 'the first match');
		expect(frame).toContain('/BOOT STAGE: match 1 of 6 (n older, N newer)');
		expect(frame).toContain('guest line 250 boot stage 5');
		await tui.press('n');
		frame = await tui.waitFor(text => text.includes('match 2 of 6'), 'the next older match');
		expect(frame).toContain('guest line 200 boot stage 4');
		expect(frame).not.toContain('guest line 299');
		await tui.press('n', 'n', 'n', 'n');
		frame = await tui.waitFor(text => text.includes('match 6 of 6'), 'the oldest match');
		expect(frame).toContain('guest line 000 boot stage 0');
		await tui.press('n');
		await tui.waitFor(text => text.includes('match 1 of 6'), 'wrapped round to the newest');
		await tui.press('N');
		frame = await tui.waitFor(text => text.includes('match 6 of 6'), 'wrapped round to the oldest');
		expect(frame).toContain('boot stage 0');
	});

	it('highlights every match on screen (in reverse video)', async () => {
		// Ink colours through chalk (ink's own dependency), which finds no colour terminal under the test runner: say it has one.
		const level = chalk.level;
		chalk.level = 1;
		try {
			const tui = await openDetails();
			const plain = tui.instance.lastFrame() ?? '';
			await tui.press('/', 'line 29', KEYS.enter);
			await tui.waitFor(text => text.includes('/line 29: match'), 'the search');
			const highlighted = tui.instance.lastFrame() ?? '';
			// ESC[7m (inverse) marks the matched text: absent before the search.
			expect(plain).not.toContain('\u001B[7m');
			expect(highlighted).toContain('\u001B[7mline 29\u001B[27m');
		} finally {
			chalk.level = level;
		}
	});

	it('typing a search: keys are text (q does not leave), backspace edits, Esc gives up; no match is said so', async () => {
		const tui = await openDetails();
		await tui.press('/', 'q', 'x', KEYS.backspace, 'z');
		await tui.waitFor(text => text.split('\n').some(line => line.startsWith('/qz')), 'the search being typed');
		expect(tui.frame()).toContain('guest line 299');
		await tui.press(KEYS.escape);
		await tui.waitFor(text => !text.split('\n').some(line => line.startsWith('/qz')), 'the search line gone');
		// Still in the details: Esc left the search only.
		expect(tui.frame()).toMatch(/id\s+vm-aaaaaaaa/);
		await tui.press('/', 'nowhere', KEYS.enter);
		await tui.waitFor(text => text.includes('/nowhere: no match'), 'no match');
		await tui.press('q');
		await tui.waitFor(text => text.includes('HOST↑'), 'the table');
	});
});
