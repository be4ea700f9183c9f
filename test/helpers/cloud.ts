/**
 * A real little cloud for end-to-end tests: agents as child processes on the real broker, a
 * namespace of their own per test file, a blank base image, and cleanup that runs even when a
 * test fails (agents, QEMU processes, state dirs, the namespace's queues and exchanges).
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {mkdir, mkdtemp, readdir, readFile, rm} from 'node:fs/promises';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import amqp from 'amqplib';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const AGENT_BIN = join(ROOT, 'dist/agent/cli.js');
export const CLI_BIN = join(ROOT, 'dist/bin/kloud-tui.js');
export const AMQP_URL = process.env.KLOUD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export type AgentHandle = {
	readonly hostId: string;
	readonly stateDir: string;
	readonly process: ChildProcess;
	/** Everything the agent logged so far (pino JSON lines). */
	logs(): string;
	/** Sends a signal and waits for the agent process to end. */
	stop(signal?: NodeJS.Signals): Promise<void>;
};

export type CliResult = {readonly code: number; readonly stdout: string; readonly stderr: string; readonly ms: number};

export type Cloud = {
	readonly namespace: string;
	readonly amqpUrl: string;
	readonly dir: string;
	readonly imagesDir: string;
	/** `options.amqpUrl`: the agent logs in as another user than the cloud's (an agent user, see `createAgentUser`). */
	startAgent(hostId: string, extra?: readonly string[], options?: {readonly amqpUrl?: string; readonly imagesDir?: string}): Promise<AgentHandle>;
	cli(args: readonly string[]): Promise<CliResult>;
	cliJson<T = any>(args: readonly string[]): Promise<T>;
	cleanup(): Promise<void>;
};

/** Short paths: QMP sockets live under the state dir and unix socket paths stop at 108 bytes. */
export async function createCloud(label: string, options: {readonly amqpUrl?: string} = {}): Promise<Cloud> {
	const amqpUrl = options.amqpUrl ?? AMQP_URL;
	const namespace = `test-${label}-${randomBytes(3).toString('hex')}`;
	const dir = await mkdtemp(`/tmp/kl-${label}-`);
	const imagesDir = join(dir, 'img');
	await mkdir(imagesDir);
	await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(imagesDir, 'blank.qcow2'), '64M']);
	const agents: AgentHandle[] = [];

	const startAgent = async (hostId: string, extra: readonly string[] = [], options: {readonly amqpUrl?: string; readonly imagesDir?: string} = {}): Promise<AgentHandle> => {
		const stateDir = join(dir, hostId);
		const child = spawn(
			process.execPath,
			[
				AGENT_BIN, '--amqp', options.amqpUrl ?? amqpUrl, '--namespace', namespace, '--host-id', hostId, '--images', options.imagesDir ?? imagesDir, '--state-dir', stateDir, '--grace', '3', '--log-level', 'debug',
				...(extra.includes('--heartbeat') ? [] : ['--heartbeat', '1']),
				// The agent's default network is `private`, which builds a bridge, NAT and dnsmasq: only in
				// a namespace of the test's own (`--netns`), never on the machine running the tests.
				...(extra.includes('--network-default') ? [] : ['--network-default', 'none']),
				...extra,
			],
			{stdio: ['ignore', 'pipe', 'pipe']},
		);
		let output = '';
		child.stdout.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		child.stderr.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
		const handle: AgentHandle = {
			hostId,
			stateDir,
			process: child,
			logs: () => output,
			async stop(signal = 'SIGTERM') {
				if (child.exitCode === null && child.signalCode === null) {
					child.kill(signal);
				}

				await exited;
			},
		};
		agents.push(handle);
		await waitFor(() => output.includes('"agent ready"') || child.exitCode !== null, 15_000, `agent ${hostId} to be ready`);
		if (child.exitCode !== null) {
			throw new Error(`agent ${hostId} exited: ${output}`);
		}

		return handle;
	};

	const cli = async (args: readonly string[]): Promise<CliResult> => {
		const started = performance.now();
		return new Promise(resolve => {
			execFile(process.execPath, [CLI_BIN, ...args, '--amqp', amqpUrl, '--namespace', namespace], (error, stdout, stderr) => {
				const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
				resolve({code, stdout, stderr, ms: performance.now() - started});
			});
		});
	};

	return {
		namespace,
		amqpUrl,
		dir,
		imagesDir,
		startAgent,
		cli,
		async cliJson(args) {
			const result = await cli([...args, '--json']);
			if (result.code !== 0) {
				throw new Error(`kloud-tui ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
			}

			return JSON.parse(result.stdout);
		},
		async cleanup() {
			await Promise.all(agents.map(async agent => agent.stop('SIGKILL')));
			await killVmProcesses(dir);
			await deleteNamespace(namespace, amqpUrl);
			await rm(dir, {recursive: true, force: true});
		},
	};
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!(await predicate())) {
		if (Date.now() > deadline) {
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		}

		await new Promise(resolve => setTimeout(resolve, 20));
	}
}

/**
 * Polls a VM's console log in its agent's state dir (cheap: CLI rounds would eat the CPU the guest
 * boots on) until `isDone`; fails with the console's tail and the agent's log. Resolves with the
 * text and how long it took.
 */
export async function waitForAgentConsole(agent: AgentHandle, vmId: string, what: string, isDone: (text: string) => boolean, timeoutMs: number): Promise<{text: string; ms: number}> {
	const started = performance.now();
	const path = join(agent.stateDir, vmId, 'console.log');
	let text = '';
	try {
		await waitFor(
			async () => {
				text = await readFile(path, 'utf8').catch(() => '');
				return isDone(text);
			},
			timeoutMs,
			`${what} on ${vmId}'s console`,
		);
	} catch (error) {
		throw new Error(`${(error as Error).message}\n--- console ---\n${text.slice(-3000)}\n--- agent ---\n${agent.logs().slice(-4000)}`, {cause: error});
	}

	return {text, ms: performance.now() - started};
}

/** The pid of the process named exactly `name` (like `ps -eo comm`), if one runs. */
export async function pidByName(name: string): Promise<number | undefined> {
	for (const entry of await readdir('/proc')) {
		if (!/^\d+$/.test(entry)) {
			continue;
		}

		const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
		const state = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
		if (comm.trim() === name && !/^\d+ \(.*\) Z/.test(state)) {
			return Number(entry);
		}
	}

	return undefined;
}

/** Kills every QEMU whose command line points into `dir`. */
export async function killVmProcesses(dir: string): Promise<void> {
	for (const entry of await readdir('/proc')) {
		if (!/^\d+$/.test(entry)) {
			continue;
		}

		const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
		if (cmd.includes('qemu-system') && cmd.includes(`${dir}/`)) {
			try {
				process.kill(Number(entry), 'SIGKILL');
			} catch {}
		}
	}
}

export async function deleteNamespace(namespace: string, url = AMQP_URL): Promise<void> {
	const connection = await connectAny(url);
	try {
		for (const queue of [`${namespace}.start`, `${namespace}.dead`, `${namespace}.vm-queue`, `${namespace}.groups`, `${namespace}.controller`]) {
			const channel = await connection.createChannel();
			channel.on('error', () => {});
			await channel.deleteQueue(queue).catch(() => {});
			await channel.close().catch(() => {});
		}

		for (const exchange of [`${namespace}.commands`, `${namespace}.events`, `${namespace}.dead`]) {
			const channel = await connection.createChannel();
			channel.on('error', () => {});
			await channel.deleteExchange(exchange).catch(() => {});
			await channel.close().catch(() => {});
		}
	} finally {
		await connection.close();
	}
}

/** The first broker of a comma-separated list that takes a connection (a cluster test may have one node down). */
async function connectAny(list: string): Promise<amqp.ChannelModel> {
	let lastError: unknown;
	for (const url of list.split(',')) {
		try {
			return await amqp.connect(url.trim());
		} catch (error) {
			lastError = error;
		}
	}

	throw lastError;
}

/** A throwaway RabbitMQ virtual host (for clients like the tutorial's, whose queue names are fixed). */
export async function createVhost(label: string): Promise<{readonly url: string; readonly name: string; remove(): Promise<void>}> {
	const name = `kloud-test-${label}-${randomBytes(3).toString('hex')}`;
	await run('rabbitmqctl', ['-q', 'add_vhost', name]);
	await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
	const base = new URL(AMQP_URL);
	base.pathname = `/${encodeURIComponent(name)}`;
	return {
		url: base.toString(),
		name,
		async remove() {
			await run('rabbitmqctl', ['-q', 'delete_vhost', name]).catch(() => {});
		},
	};
}

/** Pids of the QEMU processes whose command line points into `dir` (a test's state dirs). */
export async function qemuPidsUnder(dir: string): Promise<number[]> {
	const pids: number[] = [];
	for (const entry of await readdir('/proc')) {
		if (!/^\d+$/.test(entry)) {
			continue;
		}

		const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
		const state = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
		if (cmd.includes('qemu-system') && cmd.includes(`${dir}/`) && !/^\d+ \(.*\) Z/.test(state)) {
			pids.push(Number(entry));
		}
	}

	return pids.sort((a, b) => a - b);
}

/**
 * Has the broker close every connection named exactly `connectionName` (`kloud-agent@<host>`,
 * `kloud-tui@…`), as `rabbitmqctl close_connection` would for an operator; returns how many.
 * Only ever a test's own connections: other sessions share this broker.
 */
export async function closeConnections(connectionName: string): Promise<number> {
	const {stdout} = await run('rabbitmqctl', ['-q', 'list_connections', 'pid', 'client_properties']);
	const pids = stdout
		.split('\n')
		.filter(line => line.includes(`{"connection_name",${JSON.stringify(connectionName)}}`))
		.map(line => line.split('\t')[0]!);
	for (const pid of pids) {
		await run('rabbitmqctl', ['-q', 'close_connection', pid, 'test: forced close']);
	}

	return pids.length;
}

export type Tenant = {readonly name: string; readonly url: string; remove(): Promise<void>};

/** A RabbitMQ user with a random name (or `options.name`) and password, given its permissions by `grant`; deleted by `remove()`. */
async function createBrokerUser(prefix: string, label: string, grant: (name: string) => Promise<void>, options: {readonly amqpUrl?: string; readonly name?: string}): Promise<Tenant> {
	const name = options.name ?? `${prefix}-${randomBytes(3).toString('hex')}-${label}`;
	const password = randomBytes(12).toString('hex');
	await run('rabbitmqctl', ['-q', 'add_user', name, password]);
	const remove = async () => {
		await run('rabbitmqctl', ['-q', 'delete_user', name]).catch(() => {});
	};

	try {
		await grant(name);
	} catch (error) {
		await remove();
		throw error;
	}

	const url = new URL(options.amqpUrl ?? AMQP_URL);
	url.username = name;
	url.password = password;
	return {name, url: url.toString(), remove};
}

/** The README's per-tenant limits: a tenant cannot take the broker's connections (file descriptors) from everyone. */
export const TENANT_MAX_CONNECTIONS = 100;
export const TENANT_MAX_CHANNELS = 1000;

/**
 * A RabbitMQ user set up as a tenant of `namespace` with the README's permission recipe: it may
 * publish requests and read its replies and its own VMs' events, but not declare, delete or
 * consume the namespace's queues, publish events, or bind another tenant's VM events, nor hold
 * more than `TENANT_MAX_CONNECTIONS` connections.
 */
export async function createTenant(namespace: string, label: string, options: {readonly amqpUrl?: string; readonly name?: string} = {}): Promise<Tenant> {
	const ns = namespace.replaceAll('.', '\\.');
	return createBrokerUser('kt', label, async name => {
		await run('rabbitmqctl', ['-q', 'set_permissions', '-p', '/', name, '^amq\\.gen-.*$', `^(amq\\.gen-.*|${ns}\\.commands)$`, `^(amq\\.gen-.*|${ns}\\.events|amq\\.rabbitmq\\.reply-to)$`]);
		await run('rabbitmqctl', ['-q', 'set_topic_permissions', '-p', '/', name, `${namespace}.commands`, '^(all|host\\..+|start)$', '^$']);
		await run('rabbitmqctl', ['-q', 'set_topic_permissions', '-p', '/', name, `${namespace}.events`, '^$', '^(host\\..*|vm\\.[^.]+\\.{username}\\..*)$']);
		await run('rabbitmqctl', ['-q', 'set_user_limits', name, JSON.stringify({'max-connections': TENANT_MAX_CONNECTIONS, 'max-channels': TENANT_MAX_CHANNELS})]);
	}, options);
}

/**
 * A RabbitMQ user for agents, as the README's recipe makes one: full rights on the vhost (agents
 * declare the namespace). A `--tenants` agent refuses to run as `guest`, so tests give it one of these.
 */
export async function createAgentUser(label: string, options: {readonly amqpUrl?: string} = {}): Promise<Tenant> {
	return createBrokerUser('ka', label, async name => {
		await run('rabbitmqctl', ['-q', 'set_permissions', '-p', '/', name, '.*', '.*', '.*']);
	}, options);
}

/**
 * The pid of the process whose environment has `name=value` (a tag a test put there: meow
 * rewrites the CLI's command line to its bin name, so that cannot be searched).
 */
export async function pidWithEnv(name: string, value: string): Promise<number | undefined> {
	for (const entry of await readdir('/proc')) {
		if (!/^\d+$/.test(entry)) {
			continue;
		}

		const environ = (await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '')).split('\0');
		if (environ.includes(`${name}=${value}`)) {
			return Number(entry);
		}
	}

	return undefined;
}

/** Pids of processes whose command line mentions `text` (agents carry their namespace in their title). */
export async function pidsMentioning(text: string): Promise<number[]> {
	const pids: number[] = [];
	for (const entry of await readdir('/proc')) {
		if (/^\d+$/.test(entry) && Number(entry) !== process.pid) {
			const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
			if (cmd.includes(text)) {
				pids.push(Number(entry));
			}
		}
	}

	return pids;
}

export async function exchangeExists(name: string): Promise<boolean> {
	const connection = await amqp.connect(AMQP_URL);
	try {
		const channel = await connection.createChannel();
		channel.on('error', () => {});
		return await channel.checkExchange(name).then(
			() => true,
			() => false,
		);
	} finally {
		await connection.close().catch(() => {});
	}
}

/** The broker users whose names start with `prefix` (the demo names its users `<namespace>-<kind>-<hex>`). */
export async function brokerUsersStartingWith(prefix: string): Promise<string[]> {
	const {stdout} = await run('rabbitmqctl', ['-q', 'list_users']);
	return stdout.split('\n').map(line => line.split('\t')[0] ?? '').filter(name => name.startsWith(prefix));
}

/**
 * What a demo run left behind if it failed to clean up after itself: its agents (their title names
 * the namespace), its VMs' QEMU and state under `workDir` (when known), its broker topology and users.
 */
export async function removeDemoLeftovers(namespace: string, workDir: string | undefined): Promise<void> {
	for (const pid of await pidsMentioning(`--namespace ${namespace}`)) {
		process.kill(pid, 'SIGKILL');
	}

	if (workDir) {
		await killVmProcesses(workDir);
		await rm(workDir, {recursive: true, force: true});
	}

	await deleteNamespace(namespace);
	for (const user of await brokerUsersStartingWith(`${namespace}-`)) {
		await run('rabbitmqctl', ['-q', 'delete_user', user]).catch(() => {});
	}
}
