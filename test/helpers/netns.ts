/**
 * Network namespaces for tests: "hosts" and "LANs" made with `ip netns add`, joined by veth pairs
 * created directly inside them, so the machine's own interfaces are never touched. Cleanup kills
 * every process left in them (dnsmasq, QEMU) and deletes them, even when a test failed.
 */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {access, readdir, readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs a command (argument array, no shell); rejects with its stderr on a non-zero exit. */
export async function sh(command: string, args: readonly string[], options: {readonly timeoutMs?: number} = {}): Promise<string> {
	try {
		const {stdout} = await execFileAsync(command, args, {timeout: options.timeoutMs ?? 15_000});
		return stdout;
	} catch (error) {
		const stderr = (error as {stderr?: string}).stderr?.trim() ?? '';
		throw new Error(`${[command, ...args].join(' ')} failed: ${stderr || (error as Error).message}`, {cause: error});
	}
}

/** What the network tests need on the machine; the names of what is missing. */
export async function missingNetworkTools(): Promise<string[]> {
	const tools = ['/usr/sbin/ip', '/usr/sbin/dnsmasq', '/usr/sbin/nft', '/usr/bin/dhcp_release', '/usr/bin/ping', '/usr/bin/curl', '/usr/sbin/bridge'];
	const missing: string[] = [];
	for (const tool of tools) {
		if (!(await access(tool).then(() => true, () => false))) {
			missing.push(tool);
		}
	}

	if (process.getuid?.() !== 0) {
		missing.push('root');
	}

	return missing;
}

export type Lab = {
	/** A unique namespace name for `label` (several test runs can share the machine). */
	readonly names: Readonly<Record<string, string>>;
	/** Creates namespace `label` with its loopback up. */
	addNamespace(label: string): Promise<string>;
	/** A veth pair between two namespaces, each end with an optional address, both up. */
	link(a: {readonly netns: string; readonly name: string; readonly address?: string}, b: {readonly netns: string; readonly name: string; readonly address?: string}): Promise<void>;
	/** Runs a command inside namespace `netns`. */
	exec(netns: string, command: string, args: readonly string[], options?: {readonly timeoutMs?: number}): Promise<string>;
	/** Kills every process still in the namespaces and deletes them; safe to call twice. */
	cleanup(): Promise<void>;
};

export function createLab(): Lab {
	const suffix = randomBytes(3).toString('hex');
	const names: Record<string, string> = {};
	const created: string[] = [];
	return {
		names,
		async addNamespace(label) {
			const name = `kl-${suffix}-${label}`;
			names[label] = name;
			await sh('ip', ['netns', 'add', name]);
			created.push(name);
			await sh('ip', ['-n', name, 'link', 'set', 'dev', 'lo', 'up']);
			return name;
		},
		async link(a, b) {
			// Created inside a, its peer inside b: neither end ever exists in the root namespace.
			await sh('ip', ['-n', a.netns, 'link', 'add', 'name', a.name, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.netns]);
			for (const end of [a, b]) {
				if (end.address) {
					await sh('ip', ['-n', end.netns, 'addr', 'add', end.address, 'dev', end.name]);
				}

				await sh('ip', ['-n', end.netns, 'link', 'set', 'dev', end.name, 'up']);
			}
		},
		async exec(netns, command, args, options) {
			return sh('ip', ['netns', 'exec', netns, command, ...args], options);
		},
		async cleanup() {
			for (const name of created.splice(0)) {
				// A process in the namespace (dnsmasq, QEMU) would keep it alive after `ip netns del`.
				for (let round = 0; round < 50; round++) {
					const pids = (await sh('ip', ['netns', 'pids', name]).catch(() => '')).split('\n').filter(Boolean).map(Number);
					if (pids.length === 0) {
						break;
					}

					for (const pid of pids) {
						try {
							process.kill(pid, 'SIGKILL');
						} catch {}
					}

					await new Promise(resolve => setTimeout(resolve, 20));
				}

				await sh('ip', ['netns', 'del', name]).catch(() => {});
			}
		},
	};
}

/**
 * A "LAN" for a public bridge: namespace `lan` linked to `host`'s uplink `up0` (address `hostAddress`,
 * default route via the LAN's router `router`), and a dnsmasq in `lan` handing out `range`
 * (`FIRST,LAST`, /24) with its leases in `<dir>/lan.leases`.
 */
export async function addLan(lab: Lab, options: {readonly host: string; readonly lan: string; readonly router: string; readonly hostAddress: string; readonly range: string; readonly dir: string}): Promise<void> {
	await lab.link({netns: options.host, name: 'up0', address: options.hostAddress}, {netns: options.lan, name: 'lan0', address: `${options.router}/24`});
	await sh('ip', ['-n', options.host, 'route', 'add', 'default', 'via', options.router, 'dev', 'up0']);
	await lab.exec(options.lan, 'dnsmasq', [
		'--conf-file=/dev/null',
		'--port=0',
		'--bind-interfaces',
		'--interface=lan0',
		`--pid-file=${join(options.dir, 'lan-dnsmasq.pid')}`,
		`--dhcp-leasefile=${join(options.dir, 'lan.leases')}`,
		`--dhcp-range=${options.range},255.255.255.0,1h`,
		'--dhcp-authoritative',
		'--no-ping',
	]);
}

/** Pids of processes whose command line mentions `text` (e.g. a test's temp dir). */
export async function pidsMentioning(text: string): Promise<number[]> {
	const pids: number[] = [];
	for (const entry of await readdir('/proc')) {
		if (/^\d+$/.test(entry) && Number(entry) !== process.pid) {
			const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
			if (cmd.includes(text)) {
				pids.push(Number(entry));
			}
		}
	}

	return pids;
}

/** The namespaces `ip netns list` shows. */
export async function listNamespaces(): Promise<string[]> {
	return (await sh('ip', ['netns', 'list']))
		.split('\n')
		.map(line => line.split(' ')[0] ?? '')
		.filter(Boolean);
}
