/**
 * `npm run bench`: every control-plane measure next to its floor measured in the same run, printed
 * and written to BENCHMARKS.md with the machine it ran on. Not a test: nothing here asserts.
 */
import {execFile} from 'node:child_process';
import {readFile, writeFile} from 'node:fs/promises';
import {cpus, loadavg} from 'node:os';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {createBenchCloud} from './lib/cloud.js';
import {describeMachine} from './lib/machine.js';
import {markdownTable, median, ms, ratioRow, type Row} from './lib/stats.js';
import {markSection, spliceSection} from './lib/report.js';
import {describeList, measureList, type ListPoint} from './list.js';
import {describeLifecycle, measureLifecycle} from './lifecycle.js';
import {measureCluster} from './cluster.js';
import {measureGroups} from './groups.js';
import {describePeer, measurePeer} from './peer.js';
import {measureConcurrentStarts, measureGrowth, measureStart} from './start.js';

const run = promisify(execFile);
const QUICK = process.env.BENCH_QUICK === '1';
/**
 * `BENCH_ONLY=peer` (kloud against libvirt), `BENCH_ONLY=lifecycle`, `BENCH_ONLY=groups`, `BENCH_ONLY=cluster` (the 3-node
 * cluster against the single broker), `BENCH_ONLY=migrate` (live migration) or `BENCH_ONLY=console` (keystroke round trips,
 * output throughput, 20 viewers): only that section of
 * BENCHMARKS.md is replaced, the rest kept.
 */
const ONLY = process.env.BENCH_ONLY;
const PEER = {iterations: QUICK ? 3 : 15, listIterations: QUICK ? 5 : 20, frameIterations: QUICK ? 3 : 10, cliOnly: process.env.BENCH_PEER_CLI_ONLY === '1'};
const BENCHMARKS = fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
const HOST_COUNTS = QUICK ? [1, 10] : [1, 10, 50];
const CONCURRENT = QUICK ? 20 : 100;
const GROWTH_VMS = QUICK ? 20 : 50;
/** `BENCH_RECOVERY_VMS=50`: the power-loss sizes to measure (default 10 and 50; 10 with BENCH_QUICK). */
const RECOVERY_VMS = process.env.BENCH_RECOVERY_VMS?.split(',').map(Number).filter(count => Number.isInteger(count) && count > 0);
const LIFECYCLE = {iterations: QUICK ? 3 : 10, recoveryCounts: RECOVERY_VMS && RECOVERY_VMS.length > 0 ? RECOVERY_VMS : QUICK ? [10] : [10, 50]};

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function peerSection(): Promise<string> {
	log('kloud against libvirt');
	return describePeer(await measurePeer({...PEER, log}), PEER);
}

async function lifecycleSection(): Promise<string> {
	log('the VM lifecycle: boot of a stopped VM, reboot, delete, power loss');
	const cloud = await createBenchCloud('life');
	try {
		await cloud.addAgents(1);
		await cloud.settle();
		return describeLifecycle(await measureLifecycle(cloud, {...LIFECYCLE, log}), LIFECYCLE);
	} finally {
		await cloud.close();
	}
}

async function groupsSection(): Promise<string> {
	log('groups: replacement, controller failover, a group of 50 after a failover');
	return measureGroups({replacements: QUICK ? 2 : 5, bigGroup: 50, log});
}

const SECTION_TITLES = {peer: 'Peer', lifecycle: 'Lifecycle', groups: 'Groups'} as const;

/** `BENCH_ONLY=peer`, `lifecycle` or `groups`: that section alone, spliced into the BENCHMARKS.md already there. */
async function onlySection(name: 'peer' | 'lifecycle' | 'groups'): Promise<void> {
	const machine = await describeMachine();
	log(machine);
	// The machine is shared: how busy it was says how far these figures are from a quiet box's.
	const loadBefore = loadavg()[0]!;
	const body = name === 'peer' ? await peerSection() : name === 'groups' ? await groupsSection() : await lifecycleSection();
	const load = `load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (${cpus().length} cores)`;
	const section = `${body}\n${SECTION_TITLES[name]} run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`BENCH_ONLY=${name}${name === 'peer' && PEER.cliOnly ? ' BENCH_PEER_CLI_ONLY=1' : ''} npm run bench\`${QUICK ? ' (BENCH_QUICK=1)' : ''}, on ${machine}; ${load}.\n`;
	const current = await readFile(BENCHMARKS, 'utf8').catch(() => '# Benchmarks\n');
	await writeFile(BENCHMARKS, spliceSection(current, name, section, '## Reading these numbers'));
	process.stdout.write(`\n${section}\n`);
	log(`wrote the ${name} section of ${BENCHMARKS}`);
}

async function clusterSection(): Promise<string> {
	try {
		return await measureCluster({quick: QUICK, log});
	} catch (error) {
		log(`cluster: ${(error as Error).message}`);
		return `## A 3-node RabbitMQ cluster against the single broker\n\nNot measured: ${(error as Error).message.split('\n')[0]}\n`;
	}
}

async function migrateSection(): Promise<string> {
	const {measureMigration} = await import('./migrate.js');
	return measureMigration({rounds: QUICK ? 1 : 3, log});
}

async function consoleSection(): Promise<string> {
	const {measureConsole} = await import('./console.js');
	return measureConsole({samples: QUICK ? 30 : 200, bytes: QUICK ? 256 * 1024 : 2 * 1024 * 1024, log});
}

/** Measured alone (`BENCH_ONLY=NAME`), each spliced into the BENCHMARKS.md already there. */
const SPLICED = {
	cluster: {title: 'Cluster', measure: clusterSection},
	migrate: {title: 'Migration', measure: migrateSection},
	console: {title: 'Console', measure: consoleSection},
} as const;

/** `BENCH_ONLY=cluster`, `migrate` (live migration against direct QEMU-to-QEMU) or `console` (against the guest's socket read directly). */
async function onlySpliced(name: keyof typeof SPLICED): Promise<void> {
	const machine = await describeMachine();
	log(machine);
	const loadBefore = loadavg()[0]!;
	const body = await SPLICED[name].measure();
	const load = `load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (${cpus().length} cores)`;
	const section = `${body}\n${SPLICED[name].title} run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`BENCH_ONLY=${name} npm run bench\`${QUICK ? ' (BENCH_QUICK=1)' : ''}, on ${machine}; ${load}.\n`;
	const current = await readFile(BENCHMARKS, 'utf8').catch(() => '# Benchmarks\n');
	await writeFile(BENCHMARKS, spliceSection(current, name, section, '## Reading these numbers'));
	process.stdout.write(`\n${section}\n`);
	log(`wrote the ${name} section of ${BENCHMARKS}`);
}

async function main(): Promise<void> {
	if (ONLY === 'peer' || ONLY === 'lifecycle' || ONLY === 'groups') {
		await onlySection(ONLY);
		return;
	}

	if (ONLY === 'cluster' || ONLY === 'migrate' || ONLY === 'console') {
		await onlySpliced(ONLY);
		return;
	}

	if (ONLY !== undefined) {
		throw new Error(`BENCH_ONLY=${ONLY}: only "peer", "lifecycle", "groups", "cluster", "migrate" or "console" run alone`);
	}

	const machine = await describeMachine();
	log(machine);
	const rows: Row[] = [];
	const notes: string[] = [];
	const listPoints: ListPoint[] = [];

	log(`list rounds across ${HOST_COUNTS.join(', ')} agents`);
	const listCloud = await createBenchCloud('list');
	try {
		for (const hosts of HOST_COUNTS) {
			const point = await measureList(listCloud, hosts, hosts >= 50 ? 100 : 200);
			listPoints.push(point);
			const summary = describeList(point);
			rows.push(ratioRow(summary.measure, summary.floorMedian, point.kloud, 2, 'p50 ≤ 2× floor'));
			log(`${summary.measure}: ${ms(summary.median)} vs floor ${ms(summary.floorMedian)} (${point.incomplete} rounds short of a host)`);
		}
	} finally {
		await listCloud.close();
	}

	log('start latency, one agent');
	const startCloud = await createBenchCloud('start');
	let growth;
	try {
		await startCloud.addAgents(1);
		await startCloud.settle();
		const start = await measureStart(startCloud, QUICK ? 8 : 20);
		rows.push(ratioRow('start → running (QMP answering)', median(start.floor), start.kloud, 1.3, 'p50 ≤ 1.3× floor'));
		log(`start: ${ms(median(start.kloud))} vs floor ${ms(median(start.floor))}`);
		log(`one agent grows to ${GROWTH_VMS} VMs`);
		growth = await measureGrowth(startCloud, GROWTH_VMS);
	} finally {
		await startCloud.close();
	}

	log(`${CONCURRENT} concurrent starts over 4 agents`);
	const concurrentCloud = await createBenchCloud('burst');
	try {
		await concurrentCloud.addAgents(4);
		await concurrentCloud.settle();
		const burst = await measureConcurrentStarts(concurrentCloud, CONCURRENT);
		const ratio = burst.kloudMs / burst.floorMs;
		const exact = burst.distinctVms === burst.requested && burst.listed === burst.requested;
		rows.push({
			measure: `${burst.requested} concurrent starts over 4 agents (total)`,
			floor: ms(burst.floorMs),
			median: ms(burst.kloudMs),
			p90: '–',
			ratio: `${ratio.toFixed(2)}×`,
			goal: 'all running exactly once; ≤ 1.5× floor',
			verdict: ratio <= 1.5 && exact ? 'met' : 'missed',
		});
		notes.push(
			`${burst.requested} concurrent starts: ${burst.distinctVms} distinct VMs replied, ${burst.listed} listed running afterwards; per agent ${Object.entries(burst.perAgent)
				.sort()
				.map(([host, count]) => `${host} ${count}`)
				.join(', ')}.`,
		);
		log(`burst: ${ms(burst.kloudMs)} vs floor ${ms(burst.floorMs)}; exactly once: ${exact}`);
	} finally {
		await concurrentCloud.close();
	}

	log('TUI with 10,000 VMs from 200 hosts (separate process)');
	const tuiScript = fileURLToPath(new URL('tui.js', import.meta.url));
	const {stdout} = await run(process.execPath, [tuiScript], {env: {...process.env, BENCH_JSON: '1'}, maxBuffer: 1024 * 1024});
	const tui = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
		vms: number;
		hosts: number;
		changingHosts: number;
		keyMedianMs: number;
		keyP90Ms: number;
		cpuShare: number;
		cpuShareAllChanging: number;
		rssMb: number;
	};
	rows.push(
		{measure: `TUI ${tui.vms} VMs / ${tui.hosts} hosts: keypress → next frame`, floor: '–', median: ms(tui.keyMedianMs), p90: ms(tui.keyP90Ms), ratio: '–', goal: '≤ 50 ms', verdict: tui.keyMedianMs <= 50 ? 'met' : 'missed'},
		{
			measure: `TUI: CPU while idle-refreshing at 1 Hz (${tui.changingHosts} of ${tui.hosts} hosts' lists changed per round)`,
			floor: '–',
			median: `${(tui.cpuShare * 100).toFixed(1)} % of a core`,
			p90: '–',
			ratio: '–',
			goal: '≤ 10 %',
			verdict: tui.cpuShare <= 0.1 ? 'met' : 'missed',
		},
		{
			measure: `TUI: the same with every host's list changed every round (worst case)`,
			floor: '–',
			median: `${(tui.cpuShareAllChanging * 100).toFixed(1)} % of a core`,
			p90: '–',
			ratio: '–',
			goal: '–',
			verdict: '–',
		},
		{measure: 'TUI: RSS', floor: '–', median: `${tui.rssMb.toFixed(0)} MB`, p90: '–', ratio: '–', goal: '≤ 200 MB', verdict: tui.rssMb <= 200 ? 'met' : 'missed'},
		{measure: 'agent RSS, idle', floor: '–', median: `${growth.idleRssMb.toFixed(0)} MB`, p90: '–', ratio: '–', goal: '≤ 80 MB', verdict: growth.idleRssMb <= 80 ? 'met' : 'missed'},
		{measure: `agent RSS with ${growth.loadedVms} VMs`, floor: '–', median: `${growth.loadedRssMb.toFixed(0)} MB`, p90: '–', ratio: '–', goal: '≤ 80 MB', verdict: growth.loadedRssMb <= 80 ? 'met' : 'missed'},
	);

	const bucket = (from: number, to: number) => median(growth.startByVms.filter(point => point.vmsBefore >= from && point.vmsBefore < to).map(point => point.ms));
	const startCurve = Array.from({length: Math.ceil(GROWTH_VMS / 10)}, (_, index) => `| ${index * 10}–${index * 10 + 9} | ${ms(bucket(index * 10, index * 10 + 10))} |`);
	const listCurve = listPoints.map(point => `| ${point.hosts} | ${point.vms} | ${ms(median(point.floor))} | ${ms(median(point.kloud))} | ${(median(point.kloud) / median(point.floor)).toFixed(2)}× |`);
	const listByVms = growth.listByVms.map(point => `| ${point.vms} | ${ms(point.ms)} |`);
	const report = `# Benchmarks

Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`npm run bench\`${QUICK ? ' (BENCH_QUICK=1)' : ''}.
Machine: ${machine}.

Every ratio compares kloud with its floor measured in the same run: plain amqplib responders for list
rounds, \`qemu-img create\` + QEMU spawn until QMP answers (done directly) for starts. VMs are real
QEMU processes started paused (\`-S\`, TCG, 64 MB): ${listPoints.at(-1)?.vms ?? 0} across the list
agents, ${GROWTH_VMS} on the growing agent, ${CONCURRENT} in the burst. Medians of ${HOST_COUNTS.map(hosts => (hosts >= 50 ? 100 : 200)).join('/')} list rounds and ${QUICK ? 8 : 20} starts.

${markdownTable(rows)}

${notes.join('\n')}

## Cost curves

List round latency as agents are added (each with 3 VMs):

| agents | VMs | floor median | kloud median | ratio |
| --- | --- | --- | --- | --- |
${listCurve.join('\n')}

One agent growing to ${GROWTH_VMS} VMs: start latency (request → reply) by VMs already on the host,

| VMs already running | start median |
| --- | --- |
${startCurve.join('\n')}

and list round latency by VMs on the host:

| VMs on the host | list median |
| --- | --- |
${listByVms.join('\n')}
`;
	const lifecycle = markSection('lifecycle', await lifecycleSection());
	const peer = markSection('peer', await peerSection());
	const groups = markSection('groups', await groupsSection());
	log('the 3-node cluster against the single broker');
	const clustered = markSection('cluster', await clusterSection());
	log('live migration against direct QEMU-to-QEMU');
	const migrated = markSection('migrate', await migrateSection());
	log('the interactive console against its floor');
	const consoled = markSection('console', await consoleSection());
	// Hand-written reading of the figures (bench/analysis.md) follows the generated tables.
	const analysis = await readFile(fileURLToPath(new URL('../../bench/analysis.md', import.meta.url)), 'utf8').catch(() => '');
	await writeFile(BENCHMARKS, [report, lifecycle, peer, groups, clustered, migrated, consoled, analysis].filter(Boolean).join('\n'));
	process.stdout.write(`\n${report}\n${lifecycle}\n${peer}\n${groups}\n${clustered}\n${migrated}\n${consoled}\n`);
	log(`wrote ${BENCHMARKS}`);
}

await main();
