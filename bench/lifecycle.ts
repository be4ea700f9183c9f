/**
 * The VM lifecycle (issue 12) against its floors, measured in the same run:
 * - start of a stopped VM (`boot`): QEMU spawned on the VM's existing overlay until QMP answers;
 * - hard reboot (`reboot --hard`): QMP `system_reset` sent straight to a QEMU;
 * - delete of a stopped VM: its directory (overlay and all) removed;
 * each through the client library (this process) and through `kloud-tui` (a new process each, so
 * their rows carry Node's start-up too: compare them with the floor `node -e 0` of the peer run);
 * - power loss: N VMs running, the agent and every QEMU SIGKILLed at once, the agent started again:
 *   time from its spawn until a list shows all N running, against N QEMUs spawned directly on their
 *   overlays (4 at a time, as the agent boots them again) until each answers QMP.
 * Guests are paused (`--start-paused`, `-S`) on both sides. Agents older than the lifecycle answer
 * the new requests with "not yet": the section then says so instead of measuring.
 */
import {execFile} from 'node:child_process';
import {mkdir, rm} from 'node:fs/promises';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {qmpExecute} from '../agent/qmp.js';
import {createRuntime} from '../agent/runtime.js';
import {vmPaths} from '../agent/vm-paths.js';
import {KloudRequestError} from '../source/broker/client.js';
import {AMQP_URL, spawnAgent} from './lib/agents.js';
import {PAUSED_AGENT_FLAGS, killQemuUnder, type BenchCloud} from './lib/cloud.js';
import {directBoot, directStart, killDirect, randomVmId, type DirectVm} from './lib/floor.js';
import {markdownTable, median, ms, ratioRow, type Row} from './lib/stats.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../bin/kloud-tui.js', import.meta.url));
/** How many VMs the agent boots again at once after a power loss (its default `--recovery-parallelism`). */
const RECOVERY_PARALLELISM = 4;

export type LifecycleResult = {readonly rows: Row[]; readonly notes: string[]; readonly skipped?: string};

type Options = {readonly iterations: number; readonly recoveryCounts: readonly number[]; readonly log: (line: string) => void};

/** The agent's answer when it is older than the lifecycle (agent/agent.ts before issue 12). */
function isNotYet(error: unknown): boolean {
	return error instanceof KloudRequestError && /does not serve vm\.\w+ yet/.test(error.message);
}

async function timedMs(action: () => Promise<unknown>): Promise<number> {
	const started = performance.now();
	await action();
	return performance.now() - started;
}

export async function measureLifecycle(cloud: BenchCloud, options: Options): Promise<LifecycleResult> {
	const {log} = options;
	const [agent] = cloud.agents;
	const host = agent!.hostId;
	// A probe: an agent without the lifecycle says so, and nothing here can be measured.
	const probe = await cloud.client.start({image: 'blank', host}, {timeoutMs: 60_000});
	await cloud.client.stop(probe.id, {kill: true, host, timeoutMs: 30_000});
	try {
		await cloud.client.boot(probe.id, {host, timeoutMs: 60_000});
	} catch (error) {
		if (isNotYet(error)) {
			return {rows: [], notes: [], skipped: `skipped: the agent answered "${(error as Error).message}" (merge the agent's lifecycle first)`};
		}

		throw error;
	}

	await cloud.client.delete(probe.id, {host, timeoutMs: 30_000});

	const runtime = createRuntime();
	const floorRoot = join(cloud.dir, 'floor-lifecycle');
	const kloudEnv = {...process.env, KLOUD_NAMESPACE: cloud.namespace, KLOUD_AMQP_URL: AMQP_URL};
	const kloudCli = async (...args: string[]) => timedMs(async () => run(process.execPath, [CLI, ...args, '--host', host, '--json'], {env: kloudEnv}));
	const floor = {boot: [] as number[], reset: [] as number[], remove: [] as number[]};
	const client = {boot: [] as number[], reset: [] as number[], remove: [] as number[]};
	const cli = {boot: [] as number[], reset: [] as number[], remove: [] as number[]};
	// A CLI's floor: the QEMU step plus starting Node (`node -e 0`), measured in the same iteration.
	const cliFloor = {boot: [] as number[], reset: [] as number[], remove: [] as number[]};
	log(`lifecycle: boot of a stopped VM, hard reboot, delete × ${options.iterations} (floor, client, CLI)`);
	for (let index = 0; index < options.iterations; index++) {
		// The floor: the same QEMU steps without the agent.
		const made = await directStart(runtime, floorRoot, cloud.base, {isPaused: true});
		await killDirect([made.vm]);
		const booted = await directBoot(runtime, floorRoot, made.id, {isPaused: true});
		floor.boot.push(booted.ms);
		floor.reset.push(await timedMs(async () => qmpExecute(vmPaths(floorRoot, made.id).qmp, 'system_reset')));
		await killDirect([booted.vm]);
		floor.remove.push(await timedMs(async () => rm(vmPaths(floorRoot, made.id).dir, {recursive: true, force: true})));

		// The client library.
		const vm = await cloud.client.start({image: 'blank', host}, {timeoutMs: 60_000});
		await cloud.client.stop(vm.id, {kill: true, host, timeoutMs: 30_000});
		client.boot.push(await timedMs(async () => cloud.client.boot(vm.id, {host, timeoutMs: 60_000})));
		client.reset.push(await timedMs(async () => cloud.client.reboot(vm.id, {host, hard: true, timeoutMs: 30_000})));
		await cloud.client.stop(vm.id, {kill: true, host, timeoutMs: 30_000});
		client.remove.push(await timedMs(async () => cloud.client.delete(vm.id, {host, timeoutMs: 30_000})));

		// The CLI, as a script runs it (with --host: no round to find the owner).
		const other = await cloud.client.start({image: 'blank', host}, {timeoutMs: 60_000});
		await cloud.client.stop(other.id, {kill: true, host, timeoutMs: 30_000});
		cli.boot.push(await kloudCli('start', other.id));
		cli.reset.push(await kloudCli('reboot', other.id, '--hard'));
		await cloud.client.stop(other.id, {kill: true, host, timeoutMs: 30_000});
		cli.remove.push(await kloudCli('delete', other.id, '--yes'));
		const node = await timedMs(async () => run(process.execPath, ['-e', '0']));
		cliFloor.boot.push(node + booted.ms);
		cliFloor.reset.push(node + floor.reset.at(-1)!);
		cliFloor.remove.push(node + floor.remove.at(-1)!);
	}

	const rows: Row[] = [
		ratioRow('start of a stopped VM, client `boot` → running (floor: QEMU on its overlay → QMP)', floor.boot, client.boot, 1.3, 'p50 ≤ 1.3× floor'),
		ratioRow('the same through `kloud-tui start VM_ID --host` (floor + `node -e 0`)', cliFloor.boot, cli.boot, Number.POSITIVE_INFINITY, '–'),
		ratioRow('hard reboot, client `reboot` hard (floor: QMP `system_reset`)', floor.reset, client.reset, Number.POSITIVE_INFINITY, '–'),
		ratioRow('the same through `kloud-tui reboot --hard --host` (floor + `node -e 0`)', cliFloor.reset, cli.reset, Number.POSITIVE_INFINITY, '–'),
		ratioRow('delete of a stopped VM, client `delete` (floor: remove its directory)', floor.remove, client.remove, Number.POSITIVE_INFINITY, '–'),
		ratioRow('the same through `kloud-tui delete --yes --host` (floor + `node -e 0`)', cliFloor.remove, cli.remove, Number.POSITIVE_INFINITY, '–'),
	].map(row => (row.goal === '–' ? {...row, verdict: '–' as const} : row));
	const notes: string[] = [];
	for (const count of options.recoveryCounts) {
		log(`lifecycle: power loss with ${count} VMs`);
		const recovery = await measureRecovery(cloud, count);
		const afterReady = recovery.kloudMs - recovery.readyMs;
		rows.push(
			{
				measure: `power loss, ${count} VMs: agent ready → all ${count} listed running (floor: ${count} QEMUs spawned directly, ${RECOVERY_PARALLELISM} at a time → QMP)`,
				floor: ms(recovery.floorMs),
				median: ms(afterReady),
				p90: '–',
				ratio: `${(afterReady / recovery.floorMs).toFixed(2)}×`,
				goal: '≤ 1.5× floor',
				verdict: afterReady / recovery.floorMs <= 1.5 ? 'met' : 'missed',
			},
			{measure: `the same from the agent's spawn (its own start-up included)`, floor: ms(recovery.floorMs), median: ms(recovery.kloudMs), p90: '–', ratio: `${(recovery.kloudMs / recovery.floorMs).toFixed(2)}×`, goal: '–', verdict: '–'},
		);
		notes.push(`Power loss with ${count} VMs: one run; the agent was ready (connected, \`agent ready\`) ${ms(recovery.readyMs)} after its spawn; ${recovery.running}/${count} running at the end.`);
	}

	return {rows, notes};
}

type RecoveryResult = {readonly kloudMs: number; readonly floorMs: number; readonly readyMs: number; readonly running: number};

/** N VMs on a fresh agent; the agent and its QEMUs SIGKILLed at once; the agent spawned again until all N run. */
async function measureRecovery(cloud: BenchCloud, count: number): Promise<RecoveryResult> {
	const [agent] = await cloud.addAgents(1);
	const host = agent!.hostId;
	await cloud.settle();
	for (let index = 0; index < count; index++) {
		await cloud.client.start({image: 'blank', host}, {timeoutMs: 60_000});
	}

	// The power goes: the agent and every QEMU of its host at once.
	const stateDir = join(cloud.dir, host);
	agent!.process.kill('SIGKILL');
	await killQemuUnder(stateDir);
	await agent!.stop();

	// The floor: the same number of QEMUs spawned directly on overlays made beforehand.
	const runtime = createRuntime();
	const floorRoot = join(cloud.dir, `floor-recovery-${count}`);
	await mkdir(floorRoot, {recursive: true});
	const ids = Array.from({length: count}, () => randomVmId());
	for (const id of ids) {
		await mkdir(vmPaths(floorRoot, id).dir, {recursive: true});
		await runtime.createOverlay(cloud.base, vmPaths(floorRoot, id).disk);
	}

	const direct: DirectVm[] = [];
	let next = 0;
	const floorMs = await timedMs(async () =>
		Promise.all(
			Array.from({length: RECOVERY_PARALLELISM}, async () => {
				while (next < ids.length) {
					const id = ids[next++]!;
					direct.push((await directBoot(runtime, floorRoot, id, {isPaused: true})).vm);
				}
			}),
		),
	);
	await killDirect(direct);

	const started = performance.now();
	const again = await spawnAgent({namespace: cloud.namespace, hostId: host, dir: cloud.dir, imagesDir: join(cloud.dir, 'img'), extra: PAUSED_AGENT_FLAGS});
	const readyMs = performance.now() - started;
	cloud.agents.splice(cloud.agents.indexOf(agent!), 1, again);
	let running = 0;
	const deadline = Date.now() + 300_000;
	while (Date.now() < deadline) {
		const round = await cloud.client.list({timeoutMs: 2000});
		running = round.replies.find(snapshot => snapshot.host.id === host)?.vms.filter(vm => vm.state === 'running').length ?? 0;
		if (running === count) {
			break;
		}

		await new Promise(resolve => setTimeout(resolve, 50));
	}

	const kloudMs = performance.now() - started;
	return {kloudMs, floorMs, readyMs, running};
}

/** The BENCHMARKS.md section for a lifecycle run. */
export function describeLifecycle(result: LifecycleResult, options: {readonly iterations: number}): string {
	if (result.skipped) {
		return `## The VM lifecycle\n\n${result.skipped}\n`;
	}

	return `## The VM lifecycle

One agent, blank base, paused guests (\`--start-paused\`), medians of ${options.iterations} of each. Floors are
the same QEMU steps without kloud, in the same run: QEMU spawned on the VM's existing overlay until
QMP answers (start of a stopped VM), QMP \`system_reset\` (hard reboot), removing the VM's directory
(delete). A soft reboot (the ACPI power button, the guest shuts down, the VM boots again in a new
process) waits for the guest and is not measured here: a paused guest never shuts down. CLI rows
start a Node process each (≈ 0.1 s before any work).

${markdownTable(result.rows)}

${result.notes.join('\n')}
`;
}
