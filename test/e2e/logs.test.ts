/**
 * Capped console logs, as a guest would attack them: the demo image's user-data floods the serial
 * console (≈ 1.4 MB) on an agent started with `--console-log-max 0.25` (256 KiB). The console's
 * two files (`console.log` + `console.log.1`) stay under the cap plus what the guest writes between
 * two of the agent's checks, and `kloud-tui console` still shows the newest output, read across
 * the rotation. One guest boots.
 */
import {readdir, readFile, readlink, stat, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {setTimeout} from 'node:timers/promises';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {USERDATA_DONE_MARKER} from '../../agent/image/demo-image.js';
import {MAX_CONSOLE_BYTES} from '../../source/protocol/index.js';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';

type Vm = {id: string; pid: number | null; state: string};
type ConsoleJson = {vmId: string; host: string; data: string; sizeBytes: number};

const KIB = 1024;
const CAP = 256 * KIB;
/**
 * What the guest may add between two of the agent's once-a-second checks: a TCG guest's serial
 * line writes ≈ 270 KB/s here (`yes`: 4 MB in 15 s); twice that for a loaded box.
 */
const SLACK = 512 * KIB;
const LINES = 12_000;
const FLOOD = `#!/bin/sh
# kloud test: floods the serial console (${LINES} numbered lines of ≈ 110 bytes), then says it is done.
awk -v n=${LINES} 'BEGIN { pad = sprintf("%100s", ""); gsub(/ /, "x", pad); for (i = 1; i <= n; i++) print "FLOOD " i " " pad; print "FLOOD-END " n }'
`;

const figures: Record<string, string> = {};
let cloud: Cloud;
let agent: AgentHandle;

async function sizeOf(path: string): Promise<number> {
	return (await stat(path).catch(() => undefined))?.size ?? 0;
}

beforeAll(async () => {
	cloud = await createCloud('logs');
	await linkDemoImage(cloud.imagesDir);
	agent = await cloud.startAgent('logs-a', ['--console-log-max', '0.25', '--memory', '128']);
}, 300_000);

afterAll(async () => {
	await cloud?.cleanup();
	if (Object.keys(figures).length > 0) {
		console.info(`log figures: ${JSON.stringify(figures)}`);
	}
}, 60_000);

describe('a guest flooding its console', () => {
	it('keeps console.log + console.log.1 under the cap, and `kloud-tui console` shows the newest output across the rotation', async () => {
		const userData = join(cloud.dir, 'flood.sh');
		await writeFile(userData, FLOOD);
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--user-data', userData]);
		const current = join(agent.stateDir, vm.id, 'console.log');
		const rotated = `${current}.1`;

		// The agent holds the log with O_APPEND (it writes what the guest's serial socket says): what
		// makes truncating it under the writer safe.
		const writer = agent.process.pid!;
		let consoleFd: {fd: string; target: string} | undefined;
		await waitFor(
			async () => {
				const fds = await readdir(`/proc/${writer}/fd`);
				const links = await Promise.all(fds.map(async fd => ({fd, target: await readlink(`/proc/${writer}/fd/${fd}`).catch(() => '')})));
				consoleFd = links.find(link => link.target === current);
				return consoleFd !== undefined;
			},
			10_000,
			'the agent to hold console.log',
		);
		const flags = Number.parseInt(/^flags:\s+(\d+)$/m.exec(await readFile(`/proc/${writer}/fdinfo/${consoleFd!.fd}`, 'utf8'))?.[1] ?? '0', 8);
		expect(flags & 0o2000, 'O_APPEND').toBe(0o2000);

		// Watch both files while the guest writes: the largest they ever were together.
		let largest = 0;
		let text = '';
		await waitFor(
			async () => {
				const total = (await sizeOf(current)) + (await sizeOf(rotated));
				largest = Math.max(largest, total);
				text = (await readFile(current, 'utf8').catch(() => '')) + (await readFile(rotated, 'utf8').catch(() => ''));
				return text.includes(USERDATA_DONE_MARKER);
			},
			180_000,
			`the end of the flood on ${vm.id}'s console`,
		);
		figures.largestConsoleBytes = String(largest);
		figures.rotations = String(agent.logs().split('\n').filter(line => line.includes('"log rotated"') && line.includes(vm.id)).length);
		expect(largest, 'console.log + console.log.1 at their largest').toBeLessThanOrEqual(CAP + SLACK);
		// Every flood byte passes through console.log, which each rotation empties and which never
		// held more than \`largest\`: so many rotations at least (how many more depends on the load).
		const floodBytes = LINES * ('FLOOD 1 '.length + 100 + 1); // at least: each line is its number, 100 x and a newline
		expect(Number(figures.rotations)).toBeGreaterThanOrEqual(Math.ceil(floodBytes / largest) - 1);
		expect(Number(figures.rotations)).toBeGreaterThanOrEqual(1);

		// Once the agent has rotated the last of it, the log is shorter than a full console read:
		// the read must reach back into console.log.1. The guest's serial shell greets either during
		// the flood (a loaded guest: the boot waits 5 s for the script) or after it: wait until the
		// guest is quiet, so the read can be held against the files.
		await waitFor(async () => (await sizeOf(current)) < CAP / 2 && (await sizeOf(rotated)) > 0, 10_000, 'the last rotation');
		await waitFor(async () => {
			const before = (await sizeOf(current)) + (await sizeOf(rotated));
			await setTimeout(1000);
			return (await sizeOf(current)) + (await sizeOf(rotated)) === before;
		}, 30_000, `${vm.id}'s console to go quiet`);
		const currentSize = await sizeOf(current);
		const tail = await cloud.cliJson<ConsoleJson>(['console', vm.id, '--bytes', String(MAX_CONSOLE_BYTES)]);
		expect(Buffer.byteLength(tail.data)).toBeGreaterThan(currentSize + 1000);
		expect(tail.sizeBytes).toBeLessThanOrEqual(CAP + SLACK);
		// Exactly the newest bytes of console.log.1 followed by console.log.
		const both = Buffer.concat([await readFile(rotated), await readFile(current)]);
		expect(tail.sizeBytes).toBe(both.length);
		expect(tail.data === both.subarray(-MAX_CONSOLE_BYTES).toString('utf8'), `the console's end: ${JSON.stringify(tail.data.slice(-300))}`).toBe(true);
		// The script's last lines, in order.
		expect(tail.data).toMatch(new RegExp(`FLOOD-END ${LINES}\\r?\\n(?:[^]*\\n)?${USERDATA_DONE_MARKER} status=0\\r?\\n`));
		// The newest flood lines, in order, up to the last one.
		const numbers = [...tail.data.matchAll(/^FLOOD (\d+) x+$/gm)].map(match => Number(match[1]));
		expect(numbers.length).toBeGreaterThan(500);
		expect(numbers.at(-1)).toBe(LINES);
		expect(numbers.every((value, index) => index === 0 || value > numbers[index - 1]!)).toBe(true);
		figures.consoleReadBytes = String(Buffer.byteLength(tail.data));
		figures.consoleReadFromLogBytes = String(currentSize);

		const stopped = await cloud.cliJson<Vm>(['stop', vm.id, '--kill']);
		expect(stopped.state).toBe('stopped');
	}, 300_000);
});
