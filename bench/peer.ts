/**
 * kloud against libvirt, what a user would pick instead, on this machine: the same blank base
 * image, 256 MB, TCG, no NIC, both sides' guests started paused (kloud's `--start-paused`, libvirt's
 * `--paused` / VIR_DOMAIN_START_PAUSED: QEMU runs and answers, the guest CPU waits; 100 booted TCG
 * guests would cost this 2-core machine most of a core and skew everything else). kloud and libvirt
 * alternate iteration by iteration (and swap who goes first), so drift on this shared machine
 * weighs on both alike.
 * - through the CLIs a user runs: `kloud-tui …` against `virsh …`, each a new process;
 * - through long-lived clients: kloud's client library (in this process) against the libvirt Python
 *   binding (a helper process; its times are taken inside Python, around the binding's calls);
 * - the start-up floors: `node -e 0` against `virsh --version`, and `kloud-tui --help` / `list`
 *   against `node -e 0`; the TUI's first frame in tmux against a `node -e` that prints.
 */
import {execFile} from 'node:child_process';
import {mkdir, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {AMQP_URL} from './lib/agents.js';
import {createBenchCloud, type BenchCloud} from './lib/cloud.js';
import {measureFirstFrame} from './first-frame.js';
import {destroyDomains, domainXml, ensureLibvirt, forgetDomains, LIBVIRT_ENV, openPythonLibvirt, startLibvirt, type PythonLibvirt} from './lib/libvirt.js';
import {markdownTable, median, ms, p90, peerTable, ratioRow, type PeerRow, type Row} from './lib/stats.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../bin/kloud-tui.js', import.meta.url));
const MEMORY_MB = 256;
const LIST_SIZES = [5, 50] as const;

export type PeerResult = {readonly libvirtVersion: string; readonly cli: PeerRow[]; readonly clients: PeerRow[]; readonly startup: Row[]; readonly notes: string[]};

type Options = {
	readonly iterations: number;
	readonly listIterations: number;
	readonly frameIterations: number;
	/** The CLI rows and start-up floors alone (`BENCH_PEER_CLI_ONLY=1`): no client-library rows, no lifecycle rows, lists with 5 VMs only. */
	readonly cliOnly?: boolean;
	readonly log: (line: string) => void;
};

async function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ms: number; stdout: string}> {
	const started = performance.now();
	const {stdout} = await run(command, args, {env, maxBuffer: 16 * 1024 * 1024});
	return {ms: performance.now() - started, stdout};
}

/** Runs `a` then `b` on even iterations, `b` then `a` on odd ones. */
async function alternate(index: number, a: () => Promise<void>, b: () => Promise<void>): Promise<void> {
	if (index % 2 === 0) {
		await a();
		await b();
	} else {
		await b();
		await a();
	}
}

type Sides = {kloud: number[]; peer: number[]};
const sides = (): Sides => ({kloud: [], peer: []});

export async function measurePeer(options: Options): Promise<PeerResult> {
	const {log} = options;
	await ensureLibvirt(log);
	const cloud = await createBenchCloud('peer', {agentFlags: ['--start-paused', '--max-vms', '128', '--cpu-overcommit', '128', '--memory', String(MEMORY_MB), '--network-default', 'none']});
	const libvirtDir = join(cloud.dir, 'libvirt');
	await mkdir(libvirtDir);
	const prefix = `kb-${cloud.namespace.slice(-6)}-`;
	let daemons: Awaited<ReturnType<typeof startLibvirt>> | undefined;
	let python: PythonLibvirt | undefined;
	// Nothing outlives the benchmark, even interrupted: libvirt's domains, its daemons, kloud's agents, QEMU, the namespace.
	let cleaning: Promise<void> | undefined;
	const cleanup = async () => {
		cleaning ??= (async () => {
			// The Python helper first: it finishes a create in flight, whose domain is then destroyed too.
			await python?.close();
			await destroyDomains(prefix).catch((error: unknown) => log(`destroying libvirt domains: ${(error as Error).message}`));
			await run('virsh', ['pool-destroy', `${prefix}pool`], {env: LIBVIRT_ENV}).catch(() => {});
			await daemons?.stop();
			await forgetDomains(prefix);
			await cloud.close();
		})();
		return cleaning;
	};

	const onSignal = () => {
		log('interrupted: cleaning up');
		void cleanup().finally(() => process.exit(130));
	};

	process.once('SIGINT', onSignal);
	process.once('SIGTERM', onSignal);
	try {
		await cloud.addAgents(1);
		await cloud.settle();
		daemons = await startLibvirt(join(cloud.dir, 'libvirtd.log'));
		log(`libvirtd ${daemons.libvirtd}, virtlogd ${daemons.virtlogd} under a subreaper`);
		// A transient directory pool over the peer's disks: `undefine --remove-all-storage` deletes only volumes libvirt knows.
		await run('virsh', ['pool-create-as', `${prefix}pool`, 'dir', '--target', libvirtDir], {env: LIBVIRT_ENV});
		python = await openPythonLibvirt();
		return await measure(cloud, python, prefix, libvirtDir, options);
	} finally {
		process.off('SIGINT', onSignal);
		process.off('SIGTERM', onSignal);
		await cleanup();
	}
}

async function measure(cloud: BenchCloud, python: PythonLibvirt, prefix: string, libvirtDir: string, options: Options): Promise<PeerResult> {
	const {log} = options;
	const host = cloud.agents[0]!.hostId;
	const kloudEnv = {...process.env, KLOUD_NAMESPACE: cloud.namespace, KLOUD_AMQP_URL: AMQP_URL};
	const kloud = async (...args: string[]) => timed(process.execPath, [CLI, ...args], kloudEnv);
	const virsh = async (...args: string[]) => timed('virsh', args, LIBVIRT_ENV);
	let serial = 0;
	const nextDomain = () => {
		const name = `${prefix}${serial++}`;
		const disk = join(libvirtDir, `${name}.qcow2`);
		return {name, disk, xml: domainXml({name, disk, memoryMb: MEMORY_MB})};
	};

	const kloudCliStart = async () => {
		const result = await kloud('start', '--image', 'blank', '--host', host, '--network', 'none', '--json');
		return {ms: result.ms, id: (JSON.parse(result.stdout) as {id: string}).id};
	};

	/** What a virsh user types: an overlay on the base, then `virsh create` (paused, as kloud's guests are). */
	const virshStart = async () => {
		const domain = nextDomain();
		const xmlPath = `${domain.disk}.xml`;
		await writeFile(xmlPath, domain.xml);
		const started = performance.now();
		await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', cloud.base, '-F', 'qcow2', domain.disk]);
		const created = await virsh('create', '--paused', xmlPath);
		return {ms: performance.now() - started, createMs: created.ms, name: domain.name, disk: domain.disk};
	};

	// One of each first, unrecorded: libvirtd probes QEMU's capabilities on its first create.
	log('peer: warm-up');
	{
		const vm = await kloudCliStart();
		await kloud('stop', vm.id, '--kill', '--host', host, '--json');
		await cloud.client.delete(vm.id, {host, timeoutMs: 30_000});
		const domain = await virshStart();
		await virsh('destroy', domain.name);
	}

	log(`peer: CLI start and hard stop × ${options.iterations}`);
	const cliStart = sides();
	const cliStop = sides();
	const virshCreateOnly: number[] = [];
	for (let index = 0; index < options.iterations; index++) {
		let kloudVm = '';
		let domain = {name: '', disk: ''};
		await alternate(
			index,
			async () => {
				const vm = await kloudCliStart();
				cliStart.kloud.push(vm.ms);
				kloudVm = vm.id;
			},
			async () => {
				const started = await virshStart();
				cliStart.peer.push(started.ms);
				virshCreateOnly.push(started.createMs);
				domain = started;
			},
		);
		await alternate(
			index,
			async () => {
				cliStop.kloud.push((await kloud('stop', kloudVm, '--kill', '--host', host, '--json')).ms);
				// A stopped VM is kept (as virsh destroy keeps a defined domain): delete it, untimed.
				await cloud.client.delete(kloudVm, {host, timeoutMs: 30_000});
			},
			async () => {
				cliStop.peer.push((await virsh('destroy', domain.name)).ms);
				await rm(domain.disk, {force: true});
			},
		);
	}

	log(options.cliOnly ? 'peer: CLI rows only' : `peer: client library vs Python binding, start and stop × ${options.iterations}`);
	const clientStart = sides();
	const clientStop = sides();
	const createXmlOnly: number[] = [];
	for (let index = 0; index < (options.cliOnly ? 0 : options.iterations); index++) {
		let kloudVm = '';
		const domain = nextDomain();
		await alternate(
			index,
			async () => {
				const started = performance.now();
				kloudVm = (await cloud.client.start({image: 'blank', host, network: 'none'}, {timeoutMs: 60_000})).id;
				clientStart.kloud.push(performance.now() - started);
			},
			async () => {
				const answer = await python.create(domain.name, domain.xml, cloud.base, domain.disk);
				clientStart.peer.push(answer.ms);
				createXmlOnly.push(answer.createXmlMs!);
			},
		);
		await alternate(
			index,
			async () => {
				const started = performance.now();
				await cloud.client.stop(kloudVm, {kill: true, host, timeoutMs: 30_000});
				clientStop.kloud.push(performance.now() - started);
				await cloud.client.delete(kloudVm, {host, timeoutMs: 30_000});
			},
			async () => {
				clientStop.peer.push((await python.destroy(domain.name)).ms);
				await rm(domain.disk, {force: true});
			},
		);
	}

	const lifecycle = options.cliOnly ? {cli: [], clients: []} : await measureLifecyclePeers({cloud, python, host, kloud, virsh, nextDomain, pool: `${prefix}pool`, iterations: options.iterations, log});
	const listSizes = options.cliOnly ? LIST_SIZES.slice(0, 1) : LIST_SIZES;

	const cliList: Record<number, Sides> = {};
	const clientList: Record<number, Sides> = {};
	const nodeFloor: number[] = [];
	const virshVersion: number[] = [];
	const help: number[] = [];
	const listOneHost: number[] = [];
	const listNoCache: number[] = [];
	let frame;
	let running = 0;
	for (const size of listSizes) {
		log(`peer: ${size} VMs on each side`);
		// Not measured: both sides grow at once, each one VM at a time.
		const grow = size - running;
		await Promise.all([
			(async () => {
				for (let index = 0; index < grow; index++) {
					await cloud.client.start({image: 'blank', host, network: 'none'}, {timeoutMs: 60_000});
				}
			})(),
			(async () => {
				for (let index = 0; index < grow; index++) {
					const domain = nextDomain();
					await python.create(domain.name, domain.xml, cloud.base, domain.disk);
				}
			})(),
		]);
		running = size;

		const cli = (cliList[size] = sides());
		const client = (clientList[size] = sides());
		log(`peer: lists with ${size} VMs × ${options.listIterations}`);
		for (let index = 0; index < options.listIterations; index++) {
			if (size === LIST_SIZES[0]) {
				// The start-up floors, in the same iterations: what starting the runtime alone costs.
				await alternate(
					index,
					async () => {
						nodeFloor.push((await timed(process.execPath, ['-e', '0'], process.env)).ms);
					},
					async () => {
						virshVersion.push((await virsh('--version')).ms);
					},
				);
				help.push((await kloud('--help')).ms);
				// The first run after an install (or a Node upgrade): no code cache for the subcommands yet.
				listNoCache.push((await timed(process.execPath, [CLI, 'list', '--json'], {...kloudEnv, KLOUD_CACHE_DIR: ''})).ms);
			}

			await alternate(
				index,
				async () => {
					const listed = await kloud('list', '--json');
					cli.kloud.push(listed.ms);
					if (size === LIST_SIZES[0]) {
						listOneHost.push(listed.ms);
					}
				},
				async () => {
					cli.peer.push((await virsh('list', '--all')).ms);
				},
			);
			await alternate(
				index,
				async () => {
					if (options.cliOnly) {
						return;
					}

					const started = performance.now();
					await cloud.client.list({timeoutMs: 5000});
					client.kloud.push(performance.now() - started);
				},
				async () => {
					if (!options.cliOnly) {
						client.peer.push((await python.list()).ms);
					}
				},
			);
		}

		if (size === LIST_SIZES[0]) {
			log(`peer: TUI first frame in tmux × ${options.frameIterations}`);
			frame = await measureFirstFrame({cli: CLI, env: {KLOUD_NAMESPACE: cloud.namespace, KLOUD_AMQP_URL: AMQP_URL}, namespace: cloud.namespace, hosts: 1, iterations: options.frameIterations});
		}
	}

	const cli: PeerRow[] = [
		{measure: 'floor: `node -e 0` vs `virsh --version`', kloud: nodeFloor, peer: virshVersion},
		{measure: 'create + start (`kloud-tui start` vs `qemu-img create` + `virsh create --paused`)', kloud: cliStart.kloud, peer: cliStart.peer, goal: 1, goalText: '≤ 1×'},
		...listSizes.map(size => ({measure: `list, ${size} VMs (\`kloud-tui list --json\` vs \`virsh list --all\`)`, kloud: cliList[size]!.kloud, peer: cliList[size]!.peer, goal: 3, goalText: '≤ 3×'})),
		{measure: 'hard stop (`kloud-tui stop --kill --host` vs `virsh destroy`)', kloud: cliStop.kloud, peer: cliStop.peer, goal: 1, goalText: '≤ 1×'},
		...lifecycle.cli,
	];
	const clients: PeerRow[] = options.cliOnly ? [] : [
		{measure: 'create + start (`start` vs overlay + `createXML`)', kloud: clientStart.kloud, peer: clientStart.peer, goal: 1, goalText: '≤ 1×'},
		...listSizes.map(size => ({measure: `list, ${size} VMs (\`list\` vs \`listAllDomains\`)`, kloud: clientList[size]!.kloud, peer: clientList[size]!.peer})),
		{measure: 'hard stop (`stop` kill vs `destroy`)', kloud: clientStop.kloud, peer: clientStop.peer, goal: 1, goalText: '≤ 1×'},
		...lifecycle.clients,
	];
	const startup: Row[] = [
		ratioRow('`kloud-tui --help` (floor `node -e 0`)', nodeFloor, help, 2, 'p50 ≤ 2× floor'),
		ratioRow('`kloud-tui list --json`, 1 host, 5 VMs (floor `node -e 0`)', nodeFloor, listOneHost, 2, 'p50 ≤ 2× floor'),
		{...ratioRow('the same without its code cache (a first run after an install)', nodeFloor, listNoCache, 2, '–'), goal: '–', verdict: '–'},
	];
	if (frame) {
		startup.push(
			{measure: 'TUI first frame in tmux: its first line, broker and namespace (floor: `node -e` printing a line, same pane)', floor: ms(median(frame.floor)), median: ms(median(frame.frame)), p90: ms(p90(frame.frame)), ratio: `${(median(frame.frame) / median(frame.floor)).toFixed(2)}×`, goal: '≤ 500 ms', verdict: median(frame.frame) <= 500 ? 'met' : 'missed'},
			{measure: 'TUI: Ink\'s first frame (the table\'s column header, before connecting)', floor: ms(median(frame.floor)), median: ms(median(frame.inkFrame)), p90: ms(p90(frame.inkFrame)), ratio: `${(median(frame.inkFrame) / median(frame.floor)).toFixed(2)}×`, goal: '–', verdict: '–'},
			{measure: 'TUI: table filled by the first list round (`hosts 1/1`)', floor: ms(median(frame.floor)), median: ms(median(frame.filled)), p90: ms(p90(frame.filled)), ratio: `${(median(frame.filled) / median(frame.floor)).toFixed(2)}×`, goal: '–', verdict: '–'},
		);
	}

	const virshList = median(cliList[LIST_SIZES[0]]!.peer);
	const minimum = (samples: readonly number[]) => ms(Math.min(...samples));
	const notes = [
		`The floor of "list ≤ 3× \`virsh list\`": \`node -e 0\` alone took ${(median(nodeFloor) / virshList).toFixed(2)}× \`virsh list --all\` (${ms(median(nodeFloor))} against ${ms(virshList)}, medians), ${
			median(nodeFloor) >= 3 * virshList
				? 'so no Node CLI could meet that goal in this run, whatever it did after starting'
				: `so a Node CLI meets that goal only if everything it does past starting Node fits in ${ms(3 * virshList - median(nodeFloor))}`
		}; kloud's list took ${ms(median(listOneHost) - median(nodeFloor))} past it (loading its code, connecting, the round, closing).`,
		`Minimums (the least disturbed of each series): \`node -e 0\` ${minimum(nodeFloor)}, \`kloud-tui --help\` ${minimum(help)}, \`kloud-tui list\` ${minimum(listOneHost)} (without its code cache ${minimum(listNoCache)}), \`virsh list\` ${minimum(cliList[LIST_SIZES[0]]!.peer)}, hard stop kloud ${minimum(cliStop.kloud)} / virsh ${minimum(cliStop.peer)}${frame ? `, TUI first line ${minimum(frame.frame)}, Ink's first frame ${minimum(frame.inkFrame)} (floor ${minimum(frame.floor)})` : ''}.`,
		`The libvirt start figure includes \`qemu-img create\` for the overlay, as kloud's includes its own; \`virsh create\` alone took ${ms(median(virshCreateOnly))} (median)${createXmlOnly.length > 0 ? `, \`createXML\` alone ${ms(median(createXmlOnly))}` : ''}.`,
	];
	const libvirtVersion = (await virsh('--version')).stdout.trim();
	return {libvirtVersion, cli, clients, startup, notes};
}

type LifecyclePeerContext = {
	readonly cloud: BenchCloud;
	readonly python: PythonLibvirt;
	readonly host: string;
	readonly kloud: (...args: string[]) => Promise<{ms: number}>;
	readonly virsh: (...args: string[]) => Promise<{ms: number}>;
	readonly nextDomain: () => {name: string; disk: string; xml: string};
	readonly pool: string;
	readonly iterations: number;
	readonly log: (line: string) => void;
};

/**
 * Start of a stopped VM, hard reboot and delete on both sides, from the same states: kloud's VM
 * started and killed (kept, stopped) against a defined, shut-off libvirt domain on its own overlay;
 * set-up and the stops between are not timed. A soft reboot is left out: `virsh reboot` returns
 * once the guest was asked, kloud's once the guest is back, and a paused guest never answers.
 */
async function measureLifecyclePeers(context: LifecyclePeerContext): Promise<{cli: PeerRow[]; clients: PeerRow[]}> {
	const {cloud, python, host, kloud, virsh, nextDomain, pool} = context;
	const cli = {boot: sides(), reset: sides(), remove: sides()};
	const client = {boot: sides(), reset: sides(), remove: sides()};
	const stoppedKloudVm = async () => {
		const vm = await cloud.client.start({image: 'blank', host, network: 'none'}, {timeoutMs: 60_000});
		await cloud.client.stop(vm.id, {kill: true, host, timeoutMs: 30_000});
		return vm.id;
	};

	const timedCall = async (samples: number[], action: () => Promise<unknown>) => {
		const started = performance.now();
		await action();
		samples.push(performance.now() - started);
	};

	context.log(`peer: start of a stopped VM, hard reboot, delete × ${context.iterations}`);
	for (let index = 0; index < context.iterations; index++) {
		const vmId = await stoppedKloudVm();
		const domain = nextDomain();
		await writeFile(`${domain.disk}.xml`, domain.xml);
		await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', cloud.base, '-F', 'qcow2', domain.disk]);
		await virsh('define', `${domain.disk}.xml`);
		await alternate(
			index,
			async () => void cli.boot.kloud.push((await kloud('start', vmId, '--host', host, '--json')).ms),
			async () => void cli.boot.peer.push((await virsh('start', '--paused', domain.name)).ms),
		);
		await alternate(
			index,
			async () => void cli.reset.kloud.push((await kloud('reboot', vmId, '--hard', '--host', host, '--json')).ms),
			async () => void cli.reset.peer.push((await virsh('reset', domain.name)).ms),
		);
		await cloud.client.stop(vmId, {kill: true, host, timeoutMs: 30_000});
		await virsh('destroy', domain.name);
		await virsh('pool-refresh', pool);
		await alternate(
			index,
			async () => void cli.remove.kloud.push((await kloud('delete', vmId, '--yes', '--host', host, '--json')).ms),
			async () => void cli.remove.peer.push((await virsh('undefine', '--remove-all-storage', domain.name)).ms),
		);

		const clientVm = await stoppedKloudVm();
		const clientDomain = nextDomain();
		await python.define(clientDomain.name, clientDomain.xml, cloud.base, clientDomain.disk);
		await alternate(
			index,
			async () => timedCall(client.boot.kloud, async () => cloud.client.boot(clientVm, {host, timeoutMs: 60_000})),
			async () => void client.boot.peer.push((await python.start(clientDomain.name)).ms),
		);
		await alternate(
			index,
			async () => timedCall(client.reset.kloud, async () => cloud.client.reboot(clientVm, {host, hard: true, timeoutMs: 30_000})),
			async () => void client.reset.peer.push((await python.reset(clientDomain.name)).ms),
		);
		await cloud.client.stop(clientVm, {kill: true, host, timeoutMs: 30_000});
		await python.destroy(clientDomain.name);
		await alternate(
			index,
			async () => timedCall(client.remove.kloud, async () => cloud.client.delete(clientVm, {host, timeoutMs: 30_000})),
			async () => void client.remove.peer.push((await python.undefine(clientDomain.name, clientDomain.disk, pool)).ms),
		);
	}

	return {
		cli: [
			{measure: 'start of a stopped VM (`kloud-tui start VM_ID --host` vs `virsh start --paused` of a defined domain)', kloud: cli.boot.kloud, peer: cli.boot.peer, goal: 1, goalText: '≤ 1×'},
			// No goal: the operation itself takes a few ms, Node's start-up (the floor row) the rest.
			{measure: 'hard reboot (`kloud-tui reboot --hard --host` vs `virsh reset`)', kloud: cli.reset.kloud, peer: cli.reset.peer},
			{measure: 'delete of a stopped VM (`kloud-tui delete --yes --host` vs `virsh undefine --remove-all-storage`)', kloud: cli.remove.kloud, peer: cli.remove.peer},
		],
		clients: [
			{measure: 'start of a stopped VM (`boot` vs `create()` of a defined domain, paused)', kloud: client.boot.kloud, peer: client.boot.peer, goal: 1, goalText: '≤ 1×'},
			{measure: 'hard reboot (`reboot` hard vs `reset()`)', kloud: client.reset.kloud, peer: client.reset.peer, goal: 1, goalText: '≤ 1×'},
			{measure: 'delete of a stopped VM (`delete` vs `undefine()` + the volume\'s `delete()`)', kloud: client.remove.kloud, peer: client.remove.peer, goal: 1, goalText: '≤ 1×'},
		],
	};
}

/** The BENCHMARKS.md section for a peer run. */
export function describePeer(result: PeerResult, options: {readonly iterations: number; readonly listIterations: number; readonly frameIterations: number}): string {
	const names = {kloud: 'kloud', peer: 'libvirt'};
	return `## kloud and libvirt side by side

libvirt ${result.libvirtVersion} (libvirtd under a child subreaper, QEMU as root, the domain XML of
FACTS.md: \`type='qemu'\`, q35, ACPI, 32 MiB TB cache, no USB, no balloon) against kloud with one
agent on the same machine. Same blank base image, ${MEMORY_MB} MB, TCG, no NIC; both sides start their
guests paused (kloud's \`--start-paused\`, \`virsh create --paused\` / \`VIR_DOMAIN_START_PAUSED\`: QEMU
runs and answers its monitor, the guest CPU waits), since 100 booted TCG guests would take most of a
core of this 2-core machine. kloud and libvirt alternate iteration by iteration, and
swap who goes first. Medians of ${options.iterations} starts and stops and ${options.listIterations} list rounds per size.
Ratios are kloud / libvirt: below 1× kloud is faster.

Through the CLIs a user runs (each a new process: \`kloud-tui …\` against \`virsh …\`):

${peerTable(result.cli, names)}

${
	result.clients.length === 0
		? 'Through long-lived clients: not measured in this run (`BENCH_PEER_CLI_ONLY=1`).'
		: `Through long-lived clients (kloud's client library in the benchmark's process against the libvirt
Python binding in a helper process, timed inside Python around the binding's calls):

${peerTable(result.clients, names)}`
}

What starting a CLI costs against its floor, and the TUI (\`kloud-tui\`, no subcommand) in a real
terminal (tmux, 120×30): time until its first frame is on screen, against a \`node -e\` that prints a
line in the same pane (${options.frameIterations} runs each):

${markdownTable(result.startup)}

${result.notes.join('\n')}
`;
}
