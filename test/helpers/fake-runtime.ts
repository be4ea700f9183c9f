/**
 * A fake `Runtime` for in-process agent tests: no QEMU, no qemu-img, no network tools. A "QEMU" is
 * an entry in a process table with a real QMP unix socket (greeting, `query-status`,
 * `system_powerdown`, `system_reset`), so the agent's own QMP client and its waits run unchanged.
 * Tests end processes the ways a host does: a guest power-off (exit 0), a crash (exit 1), SIGKILL.
 */
import {createServer, type Server} from 'node:net';
import {rm, writeFile} from 'node:fs/promises';
import type {ProcessExit, ProcessRef, ProcessRow, Runtime, SpawnedProcess} from '../../agent/runtime.js';

/** A fake QEMU process. */
export type FakeQemu = {
	readonly pid: number;
	readonly vmId: string;
	readonly qmpPath: string;
	readonly cmd: string;
	isAlive: boolean;
	/** QMP listens (the "boot" is done). */
	isListening: boolean;
	resets: number;
	end(exit: ProcessExit): void;
};

export type FakeRuntimeOptions = {
	/** How long a spawned QEMU takes before its QMP socket answers (default 20 ms). */
	readonly bootMs?: number;
	/** The base image's virtual size (default 10 MiB). */
	readonly baseVirtualBytes?: number;
	/** Whether guests power off on the ACPI button (default true). */
	readonly guestHandlesPowerButton?: boolean;
};

export class FakeRuntime implements Runtime {
	readonly processes = new Map<number, FakeQemu>();
	/** Every spawn, in order, by VM id. */
	readonly spawns: string[] = [];
	/** The most QEMUs seen booting (spawned, QMP not yet answering) at once. */
	maxBooting = 0;
	/** Spawns of these VM ids exit at once (code 1) instead of booting, while the count lasts. */
	readonly failingSpawns = new Map<string, number>();
	bootMs: number;
	guestHandlesPowerButton: boolean;
	readonly #baseVirtualBytes: number;
	#nextPid = 4_000_000;
	readonly #servers = new Set<Server>();

	constructor(options: FakeRuntimeOptions = {}) {
		this.bootMs = options.bootMs ?? 20;
		this.#baseVirtualBytes = options.baseVirtualBytes ?? 10 * 1024 * 1024;
		this.guestHandlesPowerButton = options.guestHandlesPowerButton ?? true;
	}

	async createOverlay(_basePath: string, diskPath: string, options: {readonly sizeBytes?: number} = {}): Promise<void> {
		await writeFile(diskPath, `overlay ${options.sizeBytes ?? this.#baseVirtualBytes}\n`, {flag: 'wx'});
	}

	async imageInfo(): Promise<{readonly virtualBytes: number}> {
		return {virtualBytes: this.#baseVirtualBytes};
	}

	async createSeedIso(files: Readonly<Record<string, string>>, isoPath: string): Promise<void> {
		await writeFile(isoPath, JSON.stringify(files));
	}

	spawnQemu(args: readonly string[]): SpawnedProcess {
		const name = args[args.indexOf('-name') + 1] ?? '';
		const vmId = /process=(vm-[a-z]{8})/.exec(name)?.[1] ?? 'vm-unknown';
		const qmpPath = /^unix:([^,]+)/.exec(args[args.indexOf('-qmp') + 1] ?? '')?.[1] ?? '';
		const pid = this.#nextPid++;
		this.spawns.push(vmId);
		let resolveExit!: (exit: ProcessExit) => void;
		const exited = new Promise<ProcessExit>(resolve => {
			resolveExit = resolve;
		});
		let server: Server | undefined;
		const qemu: FakeQemu = {
			pid,
			vmId,
			qmpPath,
			cmd: `qemu-system-x86_64 ${args.join(' ')}`,
			isAlive: true,
			isListening: false,
			resets: 0,
			end: exit => {
				if (!qemu.isAlive) {
					return;
				}

				qemu.isAlive = false;
				qemu.isListening = false;
				if (server) {
					this.#servers.delete(server);
					server.close();
				}

				void rm(qmpPath, {force: true});
				// Like a real child: the exit event comes a moment after the process is gone.
				setTimeout(() => resolveExit(exit), 1);
			},
		};
		this.processes.set(pid, qemu);
		const failures = this.failingSpawns.get(vmId) ?? 0;
		if (failures > 0) {
			this.failingSpawns.set(vmId, failures - 1);
			setTimeout(() => qemu.end({code: 1, signal: null}), 5);
			return {pid, exited};
		}

		this.maxBooting = Math.max(this.maxBooting, this.booting() + 1);
		const booting = {counted: true};
		this.#bootingSet.add(booting);
		setTimeout(() => {
			this.#bootingSet.delete(booting);
			if (!qemu.isAlive) {
				return;
			}

			server = createServer(socket => {
				socket.setEncoding('utf8');
				socket.write(`${JSON.stringify({QMP: {version: {}, capabilities: []}})}\n`);
				let pending = '';
				socket.on('data', (chunk: string) => {
					pending += chunk;
					let newline = pending.indexOf('\n');
					while (newline !== -1) {
						const line = pending.slice(0, newline);
						pending = pending.slice(newline + 1);
						newline = pending.indexOf('\n');
						const {execute} = JSON.parse(line) as {execute: string};
						socket.write(`${JSON.stringify({return: execute === 'query-status' ? {status: 'running', running: true} : {}})}\n`);
						if (execute === 'system_powerdown' && this.guestHandlesPowerButton) {
							setTimeout(() => qemu.end({code: 0, signal: null}), 5);
						}

						if (execute === 'system_reset') {
							qemu.resets++;
						}
					}
				});
				socket.on('error', () => {});
			});
			this.#servers.add(server);
			server.listen(qmpPath, () => {
				qemu.isListening = true;
			});
		}, this.bootMs);
		return {pid, exited};
	}

	readonly #bootingSet = new Set<object>();

	private booting(): number {
		return this.#bootingSet.size;
	}

	async listProcesses(): Promise<ProcessRow[]> {
		return [...this.processes.values()].filter(qemu => qemu.isAlive).map(qemu => ({pid: qemu.pid, name: qemu.vmId, cmd: qemu.cmd}));
	}

	isAlive(process_: number | ProcessRef): boolean {
		const pid = typeof process_ === 'number' ? process_ : process_.pid;
		return this.processes.get(pid)?.isAlive ?? false;
	}

	signal(process_: number | ProcessRef, signal: 'SIGTERM' | 'SIGKILL'): boolean {
		const pid = typeof process_ === 'number' ? process_ : process_.pid;
		const qemu = this.processes.get(pid);
		if (!qemu?.isAlive) {
			return false;
		}

		qemu.end({code: null, signal});
		return true;
	}

	memoryInfo(): {totalMb: number; freeMb: number} {
		return {totalMb: 64 * 1024, freeMb: 32 * 1024};
	}

	/** CPU ticks each live process has used (tests set them); RSS is a fixed 100 MiB. */
	readonly cpuTicks = new Map<number, number>();

	async processUsage(process_: ProcessRef): Promise<{startTime: number; cpuTicks: number; rssBytes: number} | undefined> {
		return this.isAlive(process_) ? {startTime: 1, cpuTicks: this.cpuTicks.get(process_.pid) ?? 0, rssBytes: 100 * 1024 * 1024} : undefined;
	}

	async probeTcp(): Promise<{isOpen: boolean; ms: number; error?: string}> {
		return {isOpen: false, ms: 0, error: 'the fake runtime has no network'};
	}

	async run(): Promise<{stdout: string; stderr: string}> {
		return {stdout: '', stderr: ''};
	}

	/** The live QEMU of a VM, if any. */
	live(vmId: string): FakeQemu | undefined {
		return [...this.processes.values()].find(qemu => qemu.vmId === vmId && qemu.isAlive);
	}

	/** Power loss: every process gone at once, without exit events reaching anyone. */
	powerLoss(): void {
		for (const qemu of this.processes.values()) {
			qemu.isAlive = false;
		}

		this.closeAll();
	}

	closeAll(): void {
		for (const server of this.#servers) {
			server.close();
		}

		this.#servers.clear();
	}
}
