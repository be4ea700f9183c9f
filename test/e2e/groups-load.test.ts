/**
 * Scaling on load end to end: real broker, three real agents, real QEMU (TCG) booting the demo
 * image without a NIC. Each member's user-data burns a CPU for a fixed time after it boots, then
 * idles. The agents measure each member's QEMU (`list --json` shows the load), the controller
 * grows the group to its max while they burn, and shrinks it to its min once they stop: never
 * back and forth, and it holds at the min afterwards. Windows and cooldowns are made short with
 * the scale flags; the high mark is low (10 %): on a busy 2-core test machine a burning TCG guest
 * gets only ≈ 30–40 % of a core, an idle one ≈ 0.5 %.
 */
import {writeFile} from 'node:fs/promises';
import {afterAll, beforeAll, expect, it} from 'vitest';
import {parseMemberToken, type Vm} from '../../source/protocol/index.js';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';

const HOSTS = ['gl-a', 'gl-b', 'gl-c'];
const agentArgs = ['--memory', '128', '--max-vms', '2'];
/** How long each member burns after its boot (s): past the growth to max, with room for a slow boot. */
const BURN_SECONDS = 60;
const figures: Record<string, number | string> = {};
let cloud: Cloud;
const agents: AgentHandle[] = [];

type Logged = {time: number; msg: string; [key: string]: unknown};

/** Every agent's log lines with message `msg`, oldest first. */
function logged(msg: string): Logged[] {
	return agents
		.flatMap(agent => agent.logs().split('\n'))
		.filter(line => line.includes(`"msg":"${msg}"`))
		.map(line => JSON.parse(line) as Logged)
		.sort((a, b) => a.time - b.time);
}

async function members(): Promise<Vm[]> {
	const {vms}: {vms: Vm[]} = await cloud.cliJson(['list']);
	return vms.filter(vm => parseMemberToken(vm.clientToken)?.group === 'burn');
}

function dump(): string {
	return agents.map(agent => `--- ${agent.hostId} ---\n${agent.logs().split('\n').filter(line => /scal|held|group member|controller/.test(line)).slice(-40).join('\n')}`).join('\n');
}

beforeAll(async () => {
	cloud = await createCloud('grl');
	await linkDemoImage(cloud.imagesDir);
	for (const host of HOSTS) {
		agents.push(await cloud.startAgent(host, agentArgs));
	}

	await waitFor(() => logged('elected group controller').length > 0, 20_000, 'a controller to be elected');
}, 300_000);

afterAll(async () => {
	await cloud?.cleanup();
	process.stdout.write(`groups-load figures: ${JSON.stringify(figures)}\n`);
});

it('members that burn CPU grow the group to --max; when the burn stops it shrinks to --min, with no flapping', async () => {
	const script = `${cloud.dir}/burn.sh`;
	await writeFile(script, `#!/bin/sh\n( end=$(( $(date +%s) + ${BURN_SECONDS} )); while [ $(date +%s) -lt $end ]; do :; done; echo burn over ) &\n`);
	const created = await cloud.cli([
		'group', 'create', 'burn', '--image', 'demo', '--size', '1', '--min', '1', '--max', '3', '--user-data', script,
		'--scale-on', 'cpu>10%', '--scale-window', '6', '--scale-cooldown', '10', '--scale-warmup', '12',
	]);
	expect(created.code, created.stderr).toBe(0);
	const createdAt = Date.now();

	// The agents measure the burning member: its load is in `list --json`.
	let burning: Vm | undefined;
	await waitFor(
		async () => {
			burning = (await members()).find(vm => (vm.load?.cpuPercent ?? 0) > 10);
			return burning !== undefined;
		},
		120_000,
		'a member measured burning CPU',
	).catch((error: unknown) => {
		throw new Error(`${(error as Error).message}\n${dump()}`);
	});
	expect(burning!.load!.rssBytes).toBeGreaterThan(16 * 1024 * 1024);
	figures.burningCpuPercent = burning!.load!.cpuPercent;

	await waitFor(async () => (await members()).filter(vm => vm.state === 'running').length === 3, 180_000, 'the group grown to 3').catch((error: unknown) => {
		throw new Error(`${(error as Error).message}\n${dump()}`);
	});
	figures.grownToMaxMs = Date.now() - createdAt;
	const grown = await cloud.cliJson(['group', 'show', 'burn']);
	expect(grown).toMatchObject({size: 3, lastScaling: {from: 2, to: 3, reason: expect.stringMatching(/^average CPU [\d.]+% over 6 s across \d members?, above 10%: grow 2 → 3$/)}});

	await waitFor(async () => (await members()).length === 1, 300_000, 'the group shrunk to 1').catch((error: unknown) => {
		throw new Error(`${(error as Error).message}\n${dump()}`);
	});
	figures.shrunkToMinMs = Date.now() - createdAt;
	const shown = await cloud.cli(['group', 'show', 'burn']);
	expect(shown.stdout).toMatch(/scale on cpu>10% \(shrink below 5%, step 1, window 6 s, cooldown 10 s, warm-up 12 s\)/);
	expect(shown.stdout).toMatch(/last scaling .* UTC: 2 → 1, average CPU [\d.]+% over 18 s across \d members?, below 5%: shrink 2 → 1/);

	// It had its chance to flap: the controller judged the idle group at its min since the shrink.
	const shrunkAt = logged('scaling a group on load').at(-1)!.time;
	await waitFor(() => logged('group size held').some(line => line.time > shrunkAt && /at its min 1/.test(String(line.reason))), 120_000, 'the controller holding the group at its min').catch((error: unknown) => {
		throw new Error(`${(error as Error).message}\n${dump()}`);
	});
	const steps = logged('scaling a group on load').map(line => `${String(line.from)}→${String(line.to)}`);
	figures.steps = steps.join(' ');
	expect(steps).toEqual(['1→2', '2→3', '3→2', '2→1']);
	expect(await members()).toHaveLength(1);

	expect((await cloud.cli(['group', 'delete', 'burn'])).code).toBe(0);
	await waitFor(async () => (await members()).length === 0, 60_000, 'the members deleted');
}, 600_000);
