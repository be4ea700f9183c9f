/**
 * kloud-tui draws its first frame before it has a broker: the header ("connecting", the broker URL
 * and the namespace) is on screen while the broker has not answered, and q quits from it. The
 * "broker" here accepts TCP connections and never answers, so an attempt lasts until amqplib gives
 * up (5 s). (The TUI before this change drew its first frame only once that attempt had failed;
 * this test does not time, so it passes there too, later: it guards the quit during the attempt.)
 */
import {mkdtemp, readdir, rm} from 'node:fs/promises';
import {createServer, type Server, type Socket} from 'node:net';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {CLI_BIN} from '../helpers/cloud.js';
import {openTerminal, type Terminal} from '../helpers/tmux.js';

let server: Server;
let terminal: Terminal | undefined;
const sockets = new Set<Socket>();
let accepted = 0;
let cacheDir: string;
let ended = 0;

beforeAll(async () => {
	cacheDir = await mkdtemp('/tmp/kl-tui-cache-');
	server = createServer(socket => {
		accepted++;
		sockets.add(socket);
		socket.on('error', () => {});
		socket.on('close', () => {
			ended++;
			sockets.delete(socket);
		});
	});
	await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
	await terminal?.close();
	for (const socket of sockets) {
		socket.destroy();
	}

	await new Promise(resolve => server.close(resolve));
	await rm(cacheDir, {recursive: true, force: true});
});

describe('kloud-tui\'s first frame', () => {
	it('is on screen while the first connection attempt is still open, and q quits from it', async () => {
		const {port} = server.address() as {port: number};
		terminal = await openTerminal(`KLOUD_CACHE_DIR=${cacheDir} ${process.execPath} ${CLI_BIN} --amqp amqp://guest:guest@127.0.0.1:${port} --namespace first-frame; echo TUI-EXITED=$?; sleep 600`, {width: 160, height: 30});
		await terminal.waitForScreen(text => text.includes('○ connecting') && text.includes(`127.0.0.1:${port} ns first-frame`), 'the header, connecting');
		await terminal.waitForScreen(() => accepted > 0, 'the connection attempt');
		// Quit while that attempt is still open: the TUI closes it when it ends and exits cleanly.
		expect(ended).toBe(0);
		await terminal.keys('q');
		const after = await terminal.waitForScreen(text => text.includes('TUI-EXITED=0'), 'the TUI to exit');
		expect(after).not.toContain('○ connecting');
		expect(after).not.toContain('kloud ○');
		// The next start runs the TUI (and, after its first frame, its broker side) from V8 code caches.
		expect((await readdir(cacheDir)).filter(name => name.endsWith('.v8')).map(name => name.replace(/-[\da-f]{16}-.*$/, '')).sort()).toEqual(['tui', 'tui-broker']);
	});
});
