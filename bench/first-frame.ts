/**
 * `kloud-tui` (the TUI) in a real terminal: a tmux server of its own, one pane. Each sample
 * respawns the pane with the command and polls the screen until the expected text shows; its floor
 * is a trivial `node -e` that prints a line, timed the same way in the same pane.
 */
import {execFile} from 'node:child_process';
import {mkdtemp, rm} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';

const run = promisify(execFile);

export type FirstFrame = {
	/** `node -e` printing one line: process start + tmux + polling. */
	readonly floor: number[];
	/** Until the first line is on screen (where it connects: written before Ink loads). */
	readonly frame: number[];
	/** Until Ink's first frame is on screen (the table's column header; drawn before connecting). */
	readonly inkFrame: number[];
	/** Until the table holds the first list round (`hosts N/N`). */
	readonly filled: number[];
};

const shellQuote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

/** Time from respawning the pane with `command` until `predicate` holds on screen; every mark on the way is timed too. */
async function timeScreen(tmux: (...args: string[]) => Promise<string>, command: string, marks: ReadonlyArray<(text: string) => boolean>): Promise<number[]> {
	const times: Array<number | undefined> = marks.map(() => undefined);
	const started = performance.now();
	await tmux('respawn-pane', '-k', '-t', 'main', command);
	const deadline = started + 30_000;
	while (times.some(time => time === undefined)) {
		if (performance.now() > deadline) {
			throw new Error(`screen never showed every mark within 30 s:\n${await tmux('capture-pane', '-p', '-t', 'main')}`);
		}

		const text = await tmux('capture-pane', '-p', '-t', 'main');
		const now = performance.now() - started;
		// A breath between polls: back-to-back tmux clients would take CPU from what is measured.
		await new Promise(resolve => setTimeout(resolve, 5));
		for (const [index, mark] of marks.entries()) {
			if (times[index] === undefined && mark(text)) {
				times[index] = now;
			}
		}
	}

	return times as number[];
}

export async function measureFirstFrame(options: {readonly cli: string; readonly env: Readonly<Record<string, string>>; readonly namespace: string; readonly hosts: number; readonly iterations: number}): Promise<FirstFrame> {
	// A server of its own on a socket of its own, removed afterwards.
	const dir = await mkdtemp('/tmp/kb-tmux-');
	const tmux = async (...args: string[]) => (await run('tmux', ['-S', join(dir, 'socket'), ...args])).stdout;
	const envPrefix = Object.entries(options.env)
		.map(([name, value]) => `${name}=${shellQuote(value)}`)
		.join(' ');
	const idle = 'sleep 3600';
	await tmux('new-session', '-d', '-s', 'main', '-x', '120', '-y', '30', idle);
	const result: FirstFrame = {floor: [], frame: [], inkFrame: [], filled: []};
	try {
		for (let index = 0; index < options.iterations; index++) {
			const [floor] = await timeScreen(tmux, `${shellQuote(process.execPath)} -e 'console.log("floor ready")'; sleep 3600`, [text => text.includes('floor ready')]);
			result.floor.push(floor!);
			const [frame, inkFrame, filled] = await timeScreen(tmux, `env ${envPrefix} ${shellQuote(process.execPath)} ${shellQuote(options.cli)}`, [
				text => text.includes(`ns ${options.namespace}`),
				text => /HOST\S*\s+VM\s+IMAGE/.test(text),
				text => text.includes(`hosts ${options.hosts}/${options.hosts}`),
			]);
			result.frame.push(frame!);
			result.inkFrame.push(inkFrame!);
			result.filled.push(filled!);
			await tmux('respawn-pane', '-k', '-t', 'main', idle);
		}
	} finally {
		await tmux('kill-server').catch(() => {});
		await rm(dir, {recursive: true, force: true});
	}

	return result;
}
