/** A real terminal for end-to-end tests: a tmux server of its own, one pane, keys in, screen out. */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {promisify} from 'node:util';
import {waitFor} from './cloud.js';

const run = promisify(execFile);

export type Terminal = {
	/** The pane as text, as a user would see it now. */
	screen(): Promise<string>;
	/** Sends keys one after another: single characters literally, longer ones as tmux key names (Enter, Escape). */
	keys(...keys: string[]): Promise<void>;
	/** Waits until the screen satisfies `predicate`; the error shows the last screen. */
	waitForScreen(predicate: (text: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
	/** Kills the tmux server and everything running in it. */
	close(): Promise<void>;
};

/** Runs `command` (through sh) in a new width × height terminal. */
export async function openTerminal(command: string, size: {readonly width: number; readonly height: number} = {width: 100, height: 30}): Promise<Terminal> {
	const socket = `kloud-test-${randomBytes(3).toString('hex')}`;
	const tmux = async (...args: string[]) => (await run('tmux', ['-L', socket, ...args])).stdout;
	await tmux('new-session', '-d', '-s', 'main', '-x', String(size.width), '-y', String(size.height), command);
	const screen = async () => tmux('capture-pane', '-p', '-t', 'main');
	return {
		screen,
		async keys(...keys: string[]) {
			for (const key of keys) {
				await tmux('send-keys', '-t', 'main', ...(key.length === 1 ? ['-l', key] : [key]));
				await new Promise(resolve => setTimeout(resolve, 40));
			}
		},
		async waitForScreen(predicate, what, timeoutMs = 15_000) {
			let text = '';
			await waitFor(async () => predicate((text = await screen())), timeoutMs, what).catch((error: unknown) => {
				throw new Error(`${(error as Error).message}\n--- screen ---\n${text}`);
			});
			return text;
		},
		async close() {
			await tmux('kill-server').catch(() => {});
		},
	};
}
