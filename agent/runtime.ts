/**
 * The agent's window on the host: child processes, the process table, signals and memory. The only
 * module that imports execa and ps-list, so everything else can be tested without a real host.
 */
import {closeSync, openSync, readFileSync} from 'node:fs';
import {lstat, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {freemem, totalmem} from 'node:os';
import {basename, dirname, join, resolve} from 'node:path';
import {execa} from 'execa';
import psList from 'ps-list';
import {connect} from 'node:net';
import {parseProcStat, parseRssBytes} from './proc-stat.js';
import {QEMU_BINARY} from './qemu-args.js';
import {qemuCommand, type QemuNetns} from './qemu-netns.js';

/** One row of the process table. */
export type ProcessRow = {
	readonly pid: number;
	/** The kernel's name for the process (`/proc/<pid>/comm`, ≤ 15 chars): QEMU's `-name process=`. */
	readonly name: string;
	/** The full command line, arguments joined by spaces. */
	readonly cmd: string;
	/** When it started (`/proc/<pid>/stat` field 22), where it could be read. */
	readonly startTime?: number;
};

/**
 * One process for good: its pid and its start time (clock ticks after boot, `/proc/<pid>/stat`
 * field 22), which a later process given the same pid does not share. Without a start time, the
 * pid alone (a process not seen in time to read it).
 */
export type ProcessRef = {readonly pid: number; readonly startTime?: number};

/** How a spawned process ended; both null when the outcome could not be observed. */
export type ProcessExit = {
	readonly code: number | null;
	readonly signal: string | null;
};

/** A process started by `spawnQemu`. */
export type SpawnedProcess = {
	readonly pid: number;
	/** Read right after the spawn, before the child can have been reaped (so its pid not reused). */
	readonly startTime?: number;
	/** Settles when the process ends; never rejects. Only meaningful while this agent lives. */
	readonly exited: Promise<ProcessExit>;
};

/**
 * Options of `spawnQemu`. `netns`: run QEMU inside this network namespace, as `ip netns exec NAME
 * qemu-system-x86_64 …`; `hasOwnNetns`: in a fresh empty one (`unshare --net`). Both exec QEMU in
 * place, so the pid, the process name and the command line discovery reads are QEMU's own.
 */
export type SpawnQemuOptions = QemuNetns & {
	/** File that QEMU's stdout and stderr are appended to. */
	readonly logPath: string;
};

/** Options of `createOverlay`. */
export type OverlayOptions = {
	/** The overlay's virtual size; omitted: the base image's. */
	readonly sizeBytes?: number;
	readonly signal?: AbortSignal;
};

/** What `imageInfo` reads. */
export type ImageInfo = {readonly virtualBytes: number; readonly backingFile?: string};

/** What a command printed. */
export type CommandOutput = {
	readonly stdout: string;
	readonly stderr: string;
};

/** Options of `run`. */
export type RunOptions = {
	/** Written to the command's stdin. */
	readonly input?: string;
	readonly signal?: AbortSignal;
	/** Give up (and kill the command) after this long; default 10 s. */
	readonly timeoutMs?: number;
};

/** A process's CPU time so far and its resident memory now (`/proc/<pid>/stat` and `status`). */
export type ProcessUsage = {readonly startTime: number; readonly cpuTicks: number; readonly rssBytes: number};

/** What a TCP connect found: open (the connection was taken, and closed at once), or why not. */
export type TcpProbe = {readonly isOpen: boolean; readonly ms: number; readonly error?: string};

/** The host operations the agent needs; `createRuntime()` gives the real one. */
export type Runtime = {
	/**
	 * Creates `diskPath` as a qcow2 overlay backed by `basePath` (of `sizeBytes` virtual size when
	 * given, else the base's); refuses to overwrite an existing disk.
	 */
	createOverlay(basePath: string, diskPath: string, options?: OverlayOptions): Promise<void>;
	/**
	 * A qcow2 or raw image's virtual size and, for an overlay, the backing file it names as written
	 * (`qemu-img info`), read even while a QEMU has it open.
	 */
	imageInfo(path: string): Promise<ImageInfo>;
	/**
	 * Writes `files` (name → content, e.g. `user-data`, `meta-data`) into a NoCloud seed ISO at
	 * `isoPath`: volume label `cidata`, Joliet and Rock Ridge, made with genisoimage (xorriso if
	 * genisoimage is missing). The files are staged in a directory beside `isoPath` and removed after.
	 */
	createSeedIso(files: Readonly<Record<string, string>>, isoPath: string, signal?: AbortSignal): Promise<void>;
	/** Starts QEMU in its own session, so it outlives the agent whichever way the agent dies. */
	spawnQemu(args: readonly string[], options: SpawnQemuOptions): SpawnedProcess;
	/** Every process on the host, with its kernel name and full command line. */
	listProcesses(): Promise<ProcessRow[]>;
	/** Whether the process exists and is not a zombie (with a start time: and is that very process, not a later one with its pid). */
	isAlive(process: number | ProcessRef): boolean;
	/** Sends `signal` to the process; false if there is no such process (or, with a start time, only a later one with its pid). */
	signal(process: number | ProcessRef, signal: 'SIGTERM' | 'SIGKILL'): boolean;
	/** Host memory in MiB; `freeMb` is what the kernel reports as available. */
	memoryInfo(): {totalMb: number; freeMb: number};
	/** The process's CPU time and RSS; undefined when it is gone (or, with a start time, is a later process). */
	processUsage(process: ProcessRef): Promise<ProcessUsage | undefined>;
	/**
	 * Connects to `address:port` over TCP and closes at once: from the agent's own network
	 * namespace, or from `netns` (`ip netns exec NAME`, where the agent's bridges are).
	 */
	probeTcp(address: string, port: number, options: {readonly netns?: string; readonly timeoutMs: number}): Promise<TcpProbe>;
	/**
	 * Runs a host tool (`ip`, `bridge`, `nft`, `dnsmasq`, …) with an argument array, never a shell,
	 * and resolves with its output once it exits 0; otherwise rejects with a `CommandError`.
	 */
	run(command: string, args: readonly string[], options?: RunOptions): Promise<CommandOutput>;
};

/** A host command that could not be run or exited non-zero; `stderr` holds what it said. */
export class CommandError extends Error {
	override name = 'CommandError';
	readonly command: string;
	readonly args: readonly string[];
	readonly exitCode: number | undefined;
	readonly stderr: string;

	constructor(command: string, args: readonly string[], details: {readonly exitCode?: number; readonly stderr: string}, options?: ErrorOptions) {
		const detail = details.stderr.trim().split('\n').at(-1) ?? '';
		super(`${[command, ...args].join(' ')} failed${details.exitCode === undefined ? '' : ` (exit ${details.exitCode})`}${detail ? `: ${detail}` : ''}`, options);
		this.command = command;
		this.args = args;
		this.exitCode = details.exitCode;
		this.stderr = details.stderr;
	}
}

/** Thrown when `qemu-img` cannot create a VM's overlay disk. */
export class OverlayError extends Error {
	override name = 'OverlayError';
}

/** Thrown when a VM's NoCloud seed ISO cannot be made. */
export class SeedIsoError extends Error {
	override name = 'SeedIsoError';
}

/** Thrown when the QEMU binary cannot be started at all (missing, not executable). */
export class QemuSpawnError extends Error {
	override name = 'QemuSpawnError';
}

const QEMU_IMG_BINARY = 'qemu-img';
const MIB = 1024 * 1024;

/** The real runtime: spawns processes and reads `/proc` on this host. */
export function createRuntime(): Runtime {
	return {createOverlay, imageInfo, createSeedIso, spawnQemu, listProcesses, isAlive, signal, memoryInfo, processUsage, probeTcp, run};
}

async function createOverlay(basePath: string, diskPath: string, options: OverlayOptions = {}): Promise<void> {
	const {signal} = options;
	// qemu-img would silently truncate an existing disk: a retried start must never wipe a VM.
	const existing = await lstat(diskPath).catch(() => undefined);
	if (existing) {
		throw new OverlayError(`cannot create overlay ${diskPath}: it already exists`);
	}

	// The backing path is stored in the overlay, so it must not depend on the agent's cwd.
	const args = ['create', '-f', 'qcow2', '-b', resolve(basePath), '-F', 'qcow2', diskPath, ...(options.sizeBytes === undefined ? [] : [String(options.sizeBytes)])];
	try {
		await execa(QEMU_IMG_BINARY, args, {stdin: 'ignore', cancelSignal: signal});
	} catch (error) {
		const stderr = isRecord(error) && typeof error.stderr === 'string' ? error.stderr.trim() : '';
		const detail = stderr === '' ? (error instanceof Error ? error.message : String(error)) : stderr;
		throw new OverlayError(`cannot create overlay ${diskPath} over ${resolve(basePath)}: ${detail}`, {cause: error});
	}
}

async function imageInfo(path: string): Promise<ImageInfo> {
	// -U: a base image that running VMs hold open is still readable.
	const args = ['info', '-U', '--output=json', path];
	try {
		const result = await execa(QEMU_IMG_BINARY, args, {stdin: 'ignore'});
		const info: unknown = JSON.parse(result.stdout);
		const virtualBytes = isRecord(info) ? info['virtual-size'] : undefined;
		if (typeof virtualBytes !== 'number') {
			throw new TypeError(`no virtual-size in ${result.stdout.slice(0, 200)}`);
		}

		const backingFile = isRecord(info) ? info['backing-filename'] : undefined;
		return {virtualBytes, ...(typeof backingFile === 'string' ? {backingFile} : {})};
	} catch (error) {
		throw new OverlayError(`cannot read the size of image ${path}: ${error instanceof Error ? error.message : String(error)}`, {cause: error});
	}
}

/** The volume label NoCloud seeds are found by. */
const SEED_LABEL = 'cidata';

async function createSeedIso(files: Readonly<Record<string, string>>, isoPath: string, signal?: AbortSignal): Promise<void> {
	const names = Object.keys(files);
	for (const name of names) {
		// Each file lands at the ISO's root under its own name: nothing that could be a path.
		if (!/^[\w.-]+$/.test(name) || name.startsWith('.')) {
			throw new SeedIsoError(`cannot make seed ${isoPath}: invalid file name ${JSON.stringify(name)}`);
		}
	}

	const staging = await mkdtemp(join(dirname(resolve(isoPath)), `.${basename(isoPath)}-`)).catch((error: unknown) => {
		throw new SeedIsoError(`cannot make seed ${isoPath}: ${error instanceof Error ? error.message : String(error)}`, {cause: error});
	});
	try {
		const paths = names.map(name => join(staging, name));
		await Promise.all(names.map(async (name, index) => writeFile(paths[index]!, files[name]!, {mode: 0o600})));
		const options = ['-quiet', '-output', resolve(isoPath), '-volid', SEED_LABEL, '-joliet', '-rock', ...paths];
		try {
			await execa('genisoimage', options, {stdin: 'ignore', cancelSignal: signal});
		} catch (error) {
			if (!(isRecord(error) && error.code === 'ENOENT')) {
				throw error;
			}

			// Debian's genisoimage and xorriso's mkisofs emulation take the same options.
			await execa('xorriso', ['-as', 'mkisofs', ...options], {stdin: 'ignore', cancelSignal: signal}).catch((xorrisoError: unknown) => {
				throw isRecord(xorrisoError) && xorrisoError.code === 'ENOENT'
					? new SeedIsoError(`cannot make seed ${isoPath}: neither genisoimage nor xorriso is installed (apt-get install genisoimage)`, {cause: xorrisoError})
					: xorrisoError;
			});
		}
	} catch (error) {
		if (error instanceof SeedIsoError) {
			throw error;
		}

		const stderr = isRecord(error) && typeof error.stderr === 'string' ? error.stderr.trim() : '';
		const detail = stderr === '' ? (error instanceof Error ? error.message : String(error)) : stderr;
		throw new SeedIsoError(`cannot make seed ${isoPath}: ${detail}`, {cause: error});
	} finally {
		await rm(staging, {recursive: true, force: true});
	}
}

function spawnQemu(args: readonly string[], options: SpawnQemuOptions): SpawnedProcess {
	// A raw fd goes straight to the child; execa's `{file}` would pipe through the agent and the VM
	// would lose its stderr (or get SIGPIPE) once the agent is gone.
	// execa's types list only descriptors 3-9, but at run time any open descriptor is handed over as is.
	const logFd = openSync(options.logPath, 'a') as 3;
	const subprocess = (() => {
		try {
			const command = qemuCommand(args, options);
			return execa(command.file, command.args, {
				// Own session and process group: a signal to the agent's group or terminal spares the VM.
				detached: true,
				// execa would otherwise kill the VM when the agent exits.
				cleanup: false,
				stdin: 'ignore',
				stdout: logFd,
				stderr: logFd,
				reject: false,
				buffer: false,
			});
		} finally {
			// The child holds its own copy of the descriptor.
			closeSync(logFd);
		}
	})();

	const exited = subprocess.then(
		result => ({code: result.exitCode ?? null, signal: result.signal ?? null}),
		() => ({code: null, signal: null}),
	);
	const {pid} = subprocess;
	if (pid === undefined) {
		throw new QemuSpawnError(`cannot start ${QEMU_BINARY}: no process was created (is it installed?)`);
	}

	subprocess.unref();
	const startTime = readStat(pid)?.startTime;
	return {pid, exited, ...(startTime === undefined ? {} : {startTime})};
}

async function listProcesses(): Promise<ProcessRow[]> {
	const rows = await psList({all: true});
	// ps-list names a process after its executable (`/proc/<pid>/exe`), not after its comm, which
	// is where QEMU's `-name process=` lands: read the comm ourselves, with the start time.
	return Promise.all(
		rows.map(async row => {
			const stat = parseProcStat(await readFile(`/proc/${row.pid}/stat`, 'utf8').catch(() => ''));
			return {pid: row.pid, name: stat?.comm ?? row.name, cmd: row.cmd ?? '', ...(stat ? {startTime: stat.startTime} : {})};
		}),
	);
}

function isAlive(process_: number | ProcessRef): boolean {
	const {pid, startTime} = typeof process_ === 'number' ? {pid: process_, startTime: undefined} : process_;
	try {
		process.kill(pid, 0);
	} catch (error) {
		// EPERM: it exists but belongs to someone else.
		if (!(isRecord(error) && error.code === 'EPERM')) {
			return false;
		}
	}

	const stat = readStat(pid);
	if (startTime !== undefined && stat?.startTime !== startTime) {
		return false;
	}

	return stat?.state !== 'Z' && stat?.state !== 'X';
}

function readStat(pid: number): ReturnType<typeof parseProcStat> {
	try {
		return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
	} catch {
		return undefined;
	}
}

function signal(process_: number | ProcessRef, signalName: 'SIGTERM' | 'SIGKILL'): boolean {
	const {pid, startTime} = typeof process_ === 'number' ? {pid: process_, startTime: undefined} : process_;
	// The pid now names a later process: the one meant has ended. (What is left is the instant
	// between this read and the kill; a pidfd would close it, and Node has none.)
	if (startTime !== undefined && readStat(pid)?.startTime !== startTime) {
		return false;
	}

	try {
		return process.kill(pid, signalName);
	} catch (error) {
		if (isRecord(error) && error.code === 'ESRCH') {
			return false;
		}

		throw error;
	}
}

async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<CommandOutput> {
	try {
		const result = await execa(command, args, {
			input: options.input,
			stdin: options.input === undefined ? 'ignore' : undefined,
			cancelSignal: options.signal,
			timeout: options.timeoutMs ?? 10_000,
			stripFinalNewline: false,
		});
		return {stdout: result.stdout, stderr: result.stderr};
	} catch (error) {
		const stderr = isRecord(error) && typeof error.stderr === 'string' ? error.stderr : error instanceof Error ? error.message : String(error);
		const exitCode = isRecord(error) && typeof error.exitCode === 'number' ? error.exitCode : undefined;
		throw new CommandError(command, args, {exitCode, stderr}, {cause: error});
	}
}

async function processUsage(ref: ProcessRef): Promise<ProcessUsage | undefined> {
	const [statText, statusText] = await Promise.all([readFile(`/proc/${ref.pid}/stat`, 'utf8').catch(() => ''), readFile(`/proc/${ref.pid}/status`, 'utf8').catch(() => '')]);
	const stat = parseProcStat(statText);
	const rssBytes = parseRssBytes(statusText);
	if (!stat || rssBytes === undefined || (ref.startTime !== undefined && stat.startTime !== ref.startTime)) {
		return undefined;
	}

	return {startTime: stat.startTime, cpuTicks: stat.cpuTicks, rssBytes};
}

async function probeTcp(address: string, port: number, options: {readonly netns?: string; readonly timeoutMs: number}): Promise<TcpProbe> {
	const started = performance.now();
	const elapsed = () => Math.round(performance.now() - started);
	if (options.netns !== undefined) {
		// Node cannot enter a namespace: bash's /dev/tcp connects from inside it (address and port
		// are arguments, never spliced into the script), `timeout` bounds it.
		const seconds = (options.timeoutMs / 1000).toFixed(1);
		const result = await execa('ip', ['netns', 'exec', options.netns, 'timeout', seconds, 'bash', '-c', 'exec 3<>"/dev/tcp/$0/$1"', address, String(port)], {
			stdin: 'ignore',
			reject: false,
			timeout: options.timeoutMs + 2000,
		});
		if (result.exitCode === 0) {
			return {isOpen: true, ms: elapsed()};
		}

		const said = typeof result.stderr === 'string' ? result.stderr.trim().split('\n').at(-1)?.replace(/^bash: (line \d+: )?/, '') : undefined;
		return {isOpen: false, ms: elapsed(), error: result.exitCode === 124 ? `no answer within ${options.timeoutMs} ms` : said || `exit ${result.exitCode ?? result.signal}`};
	}

	return new Promise(resolve => {
		const socket = connect({host: address, port, timeout: options.timeoutMs});
		const finish = (probe: TcpProbe) => {
			socket.destroy();
			resolve(probe);
		};

		socket.once('connect', () => finish({isOpen: true, ms: elapsed()}));
		socket.once('timeout', () => finish({isOpen: false, ms: elapsed(), error: `no answer within ${options.timeoutMs} ms`}));
		socket.once('error', error => finish({isOpen: false, ms: elapsed(), error: error.message}));
	});
}

function memoryInfo(): {totalMb: number; freeMb: number} {
	return {totalMb: Math.floor(totalmem() / MIB), freeMb: Math.floor(freemem() / MIB)};
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null;
}
