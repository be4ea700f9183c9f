/**
 * libvirt as the benchmarks' peer: installed when missing, configured as FACTS.md ("libvirt 9.0 as
 * a peer") measured it, run under a child subreaper, driven through `virsh` and through its Python
 * binding, and stopped by pid afterwards. Never starts libvirt's `default` network.
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process';
import {openSync, closeSync} from 'node:fs';
import {access, readdir, readFile, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {createInterface} from 'node:readline';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';

const run = promisify(execFile);
// The daemon (libvirt-daemon-system) with its sysv variant, which avoids pulling a systemd upgrade.
const PACKAGES = ['libvirt-daemon-system', 'libvirt-daemon-system-sysv', 'libvirt-clients', 'python3-libvirt'];
/** Debian's switch that keeps package scripts from starting services (libvirtd would start the default network). */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';
const QEMU_CONF = '/etc/libvirt/qemu.conf';
/** libvirt's `default` network would add virbr0 and NAT rules to the machine's own network. */
const DEFAULT_NETWORK_AUTOSTART = '/etc/libvirt/qemu/networks/autostart/default.xml';
const LIBVIRTD_PIDFILE = '/run/libvirtd.pid';
const LIBVIRT_QEMU_RUN_DIR = '/run/libvirt/qemu';
// From dist/bench/lib/ back to the sources in bench/lib/ (tsc does not copy .py files).
const SUBREAPER = fileURLToPath(new URL('../../../bench/lib/subreaper.py', import.meta.url));
const PYTHON_CLIENT = fileURLToPath(new URL('../../../bench/lib/libvirt-client.py', import.meta.url));
/** Debian's own Python, where python3-libvirt is installed (a pyenv `python3` on PATH would not have it). */
const PYTHON = '/usr/bin/python3';
export const LIBVIRT_ENV = {...process.env, LIBVIRT_DEFAULT_URI: 'qemu:///system'};

export class LibvirtSetupError extends Error {
	override name = 'LibvirtSetupError';
}

async function succeeds(command: string, args: readonly string[]): Promise<boolean> {
	try {
		await run(command, args, {env: LIBVIRT_ENV});
		return true;
	} catch {
		return false;
	}
}

async function isInstalled(): Promise<boolean> {
	return (await succeeds('sh', ['-c', 'command -v virsh && command -v libvirtd && command -v virtlogd'])) && (await succeeds(PYTHON, ['-c', 'import libvirt']));
}

/** `qemu.conf` with QEMU run as root (as kloud runs it): otherwise every create re-probes QEMU for ~60 s. */
export function qemuConfAsRoot(text: string): string {
	const kept = text.split('\n').filter(line => !/^\s*(user|group)\s*=/.test(line));
	while (kept.length > 0 && kept.at(-1) === '') {
		kept.pop();
	}

	return `${kept.join('\n')}\n# Set by kloud's benchmark (bench/lib/libvirt.ts): QEMU runs as root, as kloud runs it.\nuser = "root"\ngroup = "root"\n`;
}

/** Installs libvirt when missing and configures it; the `default` network is never set to autostart. */
export async function ensureLibvirt(log: (line: string) => void): Promise<void> {
	if (!(await isInstalled())) {
		log(`installing ${PACKAGES.join(' ')}`);
		const env = {...process.env, DEBIAN_FRONTEND: 'noninteractive'};
		const install = async () => run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES], {env, maxBuffer: 64 * 1024 * 1024});
		const hadPolicy = await access(POLICY_RC_D).then(
			() => true,
			() => false,
		);
		if (!hadPolicy) {
			await writeFile(POLICY_RC_D, '#!/bin/sh\n# kloud bench: no service starts while libvirt installs\nexit 101\n', {mode: 0o755});
		}

		try {
			await install().catch(async () => {
				await run('apt-get', ['update'], {env, maxBuffer: 64 * 1024 * 1024});
				return install();
			});
		} finally {
			if (!hadPolicy) {
				await rm(POLICY_RC_D, {force: true});
			}
		}

		if (!(await isInstalled())) {
			throw new LibvirtSetupError(`libvirt is still missing after apt-get install ${PACKAGES.join(' ')}`);
		}
	}

	const conf = await readFile(QEMU_CONF, 'utf8');
	const wanted = qemuConfAsRoot(conf);
	if (!/^user = "root"$/m.test(conf) || !/^group = "root"$/m.test(conf)) {
		await writeFile(QEMU_CONF, wanted);
	}

	await rm(DEFAULT_NETWORK_AUTOSTART, {force: true});
}

export type LibvirtDaemons = {readonly libvirtd: number; readonly virtlogd: number; stop(): Promise<void>};

function isAlive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
}

/** Starts virtlogd and libvirtd under the subreaper and waits until `virsh` gets an answer. */
export async function startLibvirt(logPath: string): Promise<LibvirtDaemons> {
	const running = Number((await readFile(LIBVIRTD_PIDFILE, 'utf8').catch(() => '')).trim());
	if (running > 0 && isAlive(running)) {
		throw new LibvirtSetupError(`a libvirtd (pid ${running}) already runs on this machine: the benchmark starts and stops its own`);
	}

	await access(SUBREAPER);
	const logFd = openSync(logPath, 'a');
	// Its stdin stays open as long as this process lives: when it closes, the subreaper stops the daemons.
	const reaper: ChildProcess = spawn(PYTHON, [SUBREAPER], {stdio: ['pipe', 'pipe', logFd], env: LIBVIRT_ENV});
	closeSync(logFd);
	reaper.stdin!.on('error', () => {});
	const exited = new Promise<void>(resolve => reaper.once('exit', () => resolve()));
	const pids = await new Promise<{libvirtd: number; virtlogd: number}>((resolve, reject) => {
		reaper.stdout!.once('data', (chunk: Buffer) => {
			resolve(JSON.parse(chunk.toString().split('\n')[0]!) as {libvirtd: number; virtlogd: number});
		});
		reaper.once('exit', code => reject(new LibvirtSetupError(`the libvirt subreaper exited with ${code}: see ${logPath}`)));
	});
	const stop = async () => {
		reaper.stdin!.end();
		reaper.kill('SIGTERM');
		const timeout = setTimeout(() => {
			for (const pid of [pids.libvirtd, pids.virtlogd]) {
				if (isAlive(pid)) {
					process.kill(pid, 'SIGKILL');
				}
			}

			reaper.kill('SIGKILL');
		}, 20_000);
		await exited;
		clearTimeout(timeout);
		// Whatever the subreaper left behind (it should leave nothing) is stopped by pid here.
		for (const [name, pid] of Object.entries(pids)) {
			const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
			if (comm.trim() === name) {
				process.kill(pid, 'SIGKILL');
			}
		}
	};

	const deadline = Date.now() + 30_000;
	while (!(await succeeds('virsh', ['list', '--all']))) {
		if (Date.now() > deadline || reaper.exitCode !== null) {
			await stop();
			throw new LibvirtSetupError(`libvirtd did not answer within 30 s: see ${logPath}`);
		}

		await new Promise(resolve => setTimeout(resolve, 200));
	}

	return {...pids, stop};
}

/** The peer's domain: FACTS.md's measured settings (TCG, q35, ACPI, 32 MiB TB cache, no USB, no balloon, no NIC). */
export function domainXml(options: {readonly name: string; readonly disk: string; readonly memoryMb: number}): string {
	const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');
	return `<domain type='qemu'>
  <name>${escape(options.name)}</name>
  <memory unit='MiB'>${options.memoryMb}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features>
    <acpi/>
    <tcg><tb-cache unit='MiB'>32</tb-cache></tcg>
  </features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${escape(options.disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Names of the domains libvirt runs now. */
export async function domainNames(): Promise<string[]> {
	const {stdout} = await run('virsh', ['list', '--all', '--name'], {env: LIBVIRT_ENV});
	return stdout.split('\n').map(line => line.trim()).filter(Boolean);
}

/** Destroys (and undefines, if persistent) every domain whose name starts with `prefix`. */
export async function destroyDomains(prefix: string): Promise<void> {
	for (const name of (await domainNames()).filter(name => name.startsWith(prefix))) {
		await run('virsh', ['destroy', name], {env: LIBVIRT_ENV}).catch(() => {});
		await run('virsh', ['undefine', name], {env: LIBVIRT_ENV}).catch(() => {});
	}
}

/**
 * Removes libvirtd's run-time records of domains named `prefix…` once libvirtd is stopped: left
 * there only when a run was interrupted while a domain started (the subreaper killed its QEMU).
 */
export async function forgetDomains(prefix: string): Promise<void> {
	const entries = await readdir(LIBVIRT_QEMU_RUN_DIR).catch(() => [] as string[]);
	await Promise.all(entries.filter(entry => entry.startsWith(prefix) && /\.(pid|xml)$/.test(entry)).map(async entry => rm(join(LIBVIRT_QEMU_RUN_DIR, entry), {force: true})));
}

export type PythonAnswer = {readonly ms: number; readonly createXmlMs?: number; readonly name?: string; readonly count?: number; readonly error?: string};

/** The libvirt Python binding in a long-lived helper process; each call's time is taken inside Python. */
export type PythonLibvirt = {
	create(name: string, xml: string, base: string, disk: string): Promise<PythonAnswer>;
	list(): Promise<PythonAnswer>;
	destroy(name: string): Promise<PythonAnswer>;
	/** Overlay + `defineXML` (set-up, not timed): a shut-off persistent domain. */
	define(name: string, xml: string, base: string, disk: string): Promise<PythonAnswer>;
	/** `create()` of a defined domain, paused. */
	start(name: string): Promise<PythonAnswer>;
	reset(name: string): Promise<PythonAnswer>;
	/** `undefine` and delete its volume from `pool`, as `virsh undefine --remove-all-storage` does. */
	undefine(name: string, disk: string, pool: string): Promise<PythonAnswer>;
	close(): Promise<void>;
};

export async function openPythonLibvirt(): Promise<PythonLibvirt> {
	const child = spawn(PYTHON, [PYTHON_CLIENT], {stdio: ['pipe', 'pipe', 'inherit'], env: LIBVIRT_ENV});
	const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
	// A helper killed with the benchmark (Ctrl-C reaches the whole group) must not crash the clean-up.
	child.stdin!.on('error', () => {});
	const lines = createInterface({input: child.stdout!})[Symbol.asyncIterator]();
	const next = async (): Promise<PythonAnswer> => {
		const line = await lines.next();
		if (line.done) {
			throw new LibvirtSetupError('the libvirt Python helper exited');
		}

		return JSON.parse(line.value) as PythonAnswer;
	};

	await next();
	const request = async (body: Record<string, string>): Promise<PythonAnswer> => {
		child.stdin!.write(`${JSON.stringify(body)}\n`);
		const answer = await next();
		if (answer.error) {
			throw new LibvirtSetupError(`libvirt ${body.op}: ${answer.error}`);
		}

		return answer;
	};

	return {
		async create(name, xml, base, disk) {
			return request({op: 'create', name, xml, base, disk});
		},
		async list() {
			return request({op: 'list'});
		},
		async destroy(name) {
			return request({op: 'destroy', name});
		},
		async define(name, xml, base, disk) {
			return request({op: 'define', name, xml, base, disk});
		},
		async start(name) {
			return request({op: 'start', name});
		},
		async reset(name) {
			return request({op: 'reset', name});
		},
		async undefine(name, disk, pool) {
			return request({op: 'undefine', name, disk, pool});
		},
		async close() {
			child.stdin!.end();
			await exited;
		},
	};
}
