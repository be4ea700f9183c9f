/**
 * The interactive console, for real: a `--tenants` agent on the real broker, one demo guest (a
 * root shell on its serial console) owned by the tenant alice, and viewers both in-process
 * (`ConsoleStream`) and as the CLI in a real terminal (tmux) or a pipe. The guest boots once and
 * every test here shares it; the last test stops it.
 *
 * Commands are typed so that their answer differs from their echo (`echo $((6*7))` answers `42`):
 * seeing the answer proves the guest ran what was typed, not that the terminal echoed it.
 */
import {execFile, spawn} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {READY_MARKER} from '../../agent/image/demo-image.js';
import {KloudClient, KloudRequestError} from '../../source/broker/client.js';
import {ConsoleStream, type ConsoleEvent} from '../../source/broker/console-stream.js';
import type {Vm} from '../../source/protocol/index.js';
import {CLI_BIN, createAgentUser, createCloud, createTenant, waitFor, type AgentHandle, type Cloud, type Tenant} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {openTerminal, type Terminal} from '../helpers/tmux.js';

const TAG = randomBytes(2).toString('hex');
let cloud: Cloud;
let agent: AgentHandle;
let alice: Tenant;
let bob: Tenant;
let agentUser: Tenant;
let vm: Vm;
const clients: KloudClient[] = [];
const terminals: Terminal[] = [];

async function connect(tenant: Tenant): Promise<KloudClient> {
	const name = `kloud-test-console@${tenant.name}-${TAG}`;
	const client = await KloudClient.connect({url: tenant.url, namespace: cloud.namespace, connectionName: name, sender: name, reconnect: true, agentUsers: [agentUser.name]});
	clients.push(client);
	return client;
}

type Viewer = {readonly stream: ConsoleStream; readonly events: ConsoleEvent[]; text(): string};

/** An in-process viewer that keeps everything it is sent. */
async function view(client: KloudClient, options: {readonly write: boolean}): Promise<Viewer> {
	const events: ConsoleEvent[] = [];
	const stream = await ConsoleStream.open(client, vm.id, {write: options.write, timeoutMs: 10_000, onEvent: event => events.push(event)});
	return {
		stream,
		events,
		text: () =>
			events
				.filter(event => event.type === 'output')
				.map(event => event.data.toString('utf8'))
				.join(''),
	};
}

/** The CLI's command line for a tenant, as a shell word list. */
function cliCommand(tenant: Tenant, args: string): string {
	return `${process.execPath} ${CLI_BIN} ${args} --amqp '${tenant.url}' --namespace ${cloud.namespace}`;
}

async function sh(command: string, options: {readonly timeoutMs: number}): Promise<{code: number; stdout: string; stderr: string}> {
	return new Promise(resolve => {
		execFile('sh', ['-c', command], {timeout: options.timeoutMs}, (error, stdout, stderr) => {
			resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr});
		});
	});
}

const attachedCount = () => agent.logs().split('\n').filter(line => line.includes('"console attached"')).length;

beforeAll(async () => {
	cloud = await createCloud('con');
	[alice, bob, agentUser] = await Promise.all([createTenant(cloud.namespace, 'alice'), createTenant(cloud.namespace, 'bob'), createAgentUser('con')]);
	await linkDemoImage(cloud.imagesDir);
	agent = await cloud.startAgent(`con-${TAG}`, ['--tenants', '--memory', '128'], {amqpUrl: agentUser.url});
	const asAlice = await connect(alice);
	vm = await asAlice.start({image: 'demo'}, {timeoutMs: 60_000});
	const log = join(agent.stateDir, vm.id, 'console.log');
	// The shell's prompt follows the ready line (busybox's line editing then asks the terminal where its cursor is: ESC [6n).
	await waitFor(async () => /KLOUD-READY[^\n]*\n[^]*# (?:\u001B\[6n)?$/.test(await readFile(log, 'utf8').catch(() => '')), 180_000, `${vm.id}'s shell prompt after ${READY_MARKER}`);
}, 300_000);

afterAll(async () => {
	await Promise.all(terminals.map(async terminal => terminal.close()));
	await Promise.all(clients.map(async client => client.close()));
	await cloud?.cleanup();
	await Promise.all([alice, bob, agentUser].map(async tenant => tenant?.remove()));
}, 60_000);

describe('kloud-tui console --attach in a terminal', () => {
	it('runs what is typed (echo $((6*7)) answers 42) and ctrl-] gives the terminal back as it was', async () => {
		const before = join(cloud.dir, 'stty-before');
		const after = join(cloud.dir, 'stty-after');
		const terminal = await openTerminal(`stty -a > ${before}; ${cliCommand(alice, `console ${vm.id} --attach`)}; echo "EXIT=$?"; stty -a > ${after}; exec sleep 600`);
		terminals.push(terminal);
		await terminal.waitForScreen(text => text.includes(`Connected to ${vm.id}`), 'the CLI to attach');
		// The tail shows where the guest is: its prompt.
		await terminal.waitForScreen(text => /#\s*$/m.test(text), 'the shell prompt from the tail');
		for (const key of 'echo $((6*7))') {
			await terminal.keys(key);
		}

		await terminal.keys('Enter');
		await terminal.waitForScreen(text => /^42\s*$/m.test(text), 'the guest to answer 42');
		await terminal.keys('C-]');
		await terminal.waitForScreen(text => text.includes('EXIT=0'), 'the CLI to detach with status 0');
		await waitFor(async () => (await readFile(after, 'utf8').catch(() => '')).length > 0, 5000, 'stty -a after');
		expect(await readFile(after, 'utf8')).toBe(await readFile(before, 'utf8'));
		await terminal.close();
	}, 60_000);
});

describe('several viewers', () => {
	it('all see the same output; the last to attach with write takes the writer\'s seat and the other is refused', async () => {
		const asAlice = await connect(alice);
		const first = await view(asAlice, {write: true});
		expect(first.stream.isWriter).toBe(true);
		const second = await view(asAlice, {write: true});
		expect(second.stream.isWriter).toBe(true);
		const watcher = await view(asAlice, {write: false});
		expect(watcher.stream.isWriter).toBe(false);
		await waitFor(() => first.events.some(event => event.type === 'notice' && !event.isWriter), 10_000, 'the first writer to hear it lost the seat');
		expect(first.stream.isWriter).toBe(false);

		first.stream.input(Buffer.from('echo refused$((1+1))\n'));
		await waitFor(() => first.events.filter(event => event.type === 'notice').length >= 2, 10_000, 'the first viewer to be told its input was refused');
		second.stream.input(Buffer.from('echo both$((2+3))see\n'));
		for (const viewer of [first, second, watcher]) {
			await waitFor(() => viewer.text().includes('both5see'), 10_000, 'every viewer to see the writer\'s answer');
		}

		// The refused input had its chance before the writer's: it never reached the guest.
		for (const viewer of [first, second, watcher]) {
			expect(viewer.text()).not.toContain('refused2');
		}

		await Promise.all([first, second, watcher].map(async viewer => viewer.stream.detach()));
	}, 60_000);
});

describe('tenants', () => {
	it('another tenant cannot attach, nor type into a session whose id it learnt; the attach is logged with the owner', async () => {
		const asAlice = await connect(alice);
		const asBob = await connect(bob);
		// Bob cannot find alice's VM, and sent straight to its host the attach is refused.
		const unknown = await ConsoleStream.open(asBob, vm.id, {write: true, timeoutMs: 5000, onEvent() {}}).catch((error: unknown) => error);
		expect(unknown).toBeInstanceOf(KloudRequestError);
		expect((unknown as KloudRequestError).code).toBe('unknown_vm');
		const refused = await ConsoleStream.open(asBob, vm.id, {write: true, host: agent.hostId, timeoutMs: 5000, onEvent() {}}).catch((error: unknown) => error);
		expect((refused as KloudRequestError).code).toBe('forbidden');

		const owner = await view(asAlice, {write: true});
		expect(agent.logs()).toMatch(new RegExp(`"vm":"${vm.id}".*"user":"${alice.name}".*"console attached"`));
		// Bob has alice's session id (say it leaked): his input and keepalives are still refused.
		await asBob.consoleInput(agent.hostId, owner.stream.session, Buffer.from('echo stolen$((3+3))\n'));
		const keepalive = await asBob.consoleKeepalive(agent.hostId, owner.stream.session, {timeoutMs: 5000}).catch((error: unknown) => error);
		expect((keepalive as KloudRequestError).code).toBe('invalid_state');
		owner.stream.input(Buffer.from('echo mine$((3+4))\n'));
		await waitFor(() => owner.text().includes('mine7'), 10_000, 'the owner\'s answer');
		expect(owner.text()).not.toContain('stolen6');
		await owner.stream.detach();
	}, 60_000);
});

describe('flow control', () => {
	it('a viewer that stops reading (SIGSTOP) holds up neither the guest nor the other viewers', async () => {
		const asAlice = await connect(alice);
		const count = attachedCount();
		// A CLI viewer in a pipe that will not read: stopped once attached.
		const stopped = spawn('sh', ['-c', `exec ${cliCommand(alice, `console ${vm.id} --attach --read-only --until NEVER-MATCHES --timeout 300`)}`], {stdio: ['ignore', 'pipe', 'pipe']});
		let stoppedErr = '';
		stopped.stderr.on('data', (chunk: Buffer) => {
			stoppedErr += chunk.toString();
		});
		const exited = new Promise<number | null>(resolve => stopped.once('exit', code => resolve(code)));
		stopped.stdout.resume();
		await waitFor(() => attachedCount() > count, 15_000, 'the CLI viewer to attach');
		stopped.kill('SIGSTOP');
		try {
			const other = await view(asAlice, {write: true});
			// ≈ 2 MB of output: more than the stopped viewer's 1 MiB queue holds.
			other.stream.input(Buffer.from('yes kloud-flood-line-of-forty-bytes-xxxxx | head -c 2000000; echo flood-$((5*5))-done\n'));
			await waitFor(() => other.text().includes('flood-25-done'), 120_000, 'the flood to end at the viewer that reads');
			const text = other.text();
			const lines = text.split('\n').filter(line => line.startsWith('kloud-flood-line')).length;
			// Every line reached the viewer that reads: nothing of its output was dropped.
			expect(other.events.filter(event => event.type === 'dropped')).toEqual([]);
			// Lines of 38 bytes (37 and a newline, which ttyS0 sends as CR LF): every whole line head let through.
			expect(lines).toBeGreaterThanOrEqual(Math.floor(2_000_000 / 38));
			// The agent still answers at once: a new viewer attaches while the stopped one is still stopped.
			const late = await view(asAlice, {write: false});
			await late.stream.detach();
			await other.stream.detach();
		} finally {
			stopped.kill('SIGCONT');
		}

		// Woken, the stopped viewer says what it missed: frames dropped by its bounded queue, or that its
		// session is over (the broker drops a connection silent for ≈ 3 AMQP heartbeats, its queue with it).
		stopped.kill('SIGTERM');
		expect(await Promise.race([exited, new Promise(resolve => setTimeout(() => resolve('still running 30 s after SIGTERM'), 30_000))])).toBeTypeOf('number');
		expect(stoppedErr).toMatch(/output frames dropped|console closed|SIGTERM/);
	}, 240_000);
});

describe('scripts', () => {
	it('from a pipe: stdin goes to the guest, output to stdout, --until ends it', async () => {
		const result = await sh(`printf 'echo $((6*7))\\n' | ${cliCommand(alice, `console ${vm.id} --attach --until '\\n42\\r?\\n'`)}`, {timeoutMs: 60_000});
		expect(result.stderr).toBe('');
		expect(result.code).toBe(0);
		expect(result.stdout).toMatch(/^42\r?$/m);
	}, 60_000);

	it('the demo guest\'s serial line runs at 115200 baud (at 9600 QEMU holds each typed key back ~4 ms)', async () => {
		const result = await sh(`printf 'stty -a; echo stty-$((2*4))-done\n' | ${cliCommand(alice, `console ${vm.id} --attach --until 'stty-8-done'`)}`, {timeoutMs: 60_000});
		expect(result.code).toBe(0);
		expect(result.stdout).toMatch(/speed 115200 baud/);
	}, 60_000);
});

describe('the TUI', () => {
	it('c opens the selected VM\'s live console full screen; ctrl-] returns to the table', async () => {
		// CI=1: Ink renders live in a terminal even where CI is exported.
		const terminal = await openTerminal(`CI=1 ${cliCommand(alice, `--agent-users ${agentUser.name} --refresh 2`)}; echo "TUI-EXITED=$?"; exec sleep 600`);
		terminals.push(terminal);
		await terminal.waitForScreen(text => text.includes(vm.id), 'the VM in the table', 30_000);
		const count = attachedCount();
		await terminal.keys('c');
		// (Its "Connected" line may scroll away under the tail at once.)
		await waitFor(() => attachedCount() > count, 15_000, 'the TUI to attach');
		await terminal.waitForScreen(text => !text.includes('· hosts') && /#\s*$/m.test(text), 'the console full screen, at the prompt');
		for (const key of 'echo $((8*8))') {
			await terminal.keys(key);
		}

		await terminal.keys('Enter');
		await terminal.waitForScreen(text => /^64\s*$/m.test(text), 'the guest to answer 64');
		await terminal.keys('C-]');
		await terminal.waitForScreen(text => text.includes(vm.id) && !text.includes('Connected to') && !/^64\s*$/m.test(text), 'the table again');
		// Still a working table: q quits with status 0.
		await terminal.keys('q');
		await terminal.waitForScreen(text => text.includes('TUI-EXITED=0'), 'the TUI to quit');
		await terminal.close();
	}, 90_000);
});

describe('the VM stopping', () => {
	it('ends the session with a clear line and gives the terminal back', async () => {
		const before = join(cloud.dir, 'stty-before-stop');
		const after = join(cloud.dir, 'stty-after-stop');
		const count = attachedCount();
		const terminal = await openTerminal(`stty -a > ${before}; ${cliCommand(alice, `console ${vm.id} --attach`)}; echo "EXIT=$?"; stty -a > ${after}; exec sleep 600`);
		terminals.push(terminal);
		await waitFor(() => attachedCount() > count, 15_000, 'the CLI to attach');
		const asAlice = await connect(alice);
		await asAlice.stop(vm.id, {kill: true, timeoutMs: 10_000});
		const screen = await terminal.waitForScreen(text => text.includes('EXIT=1'), 'the CLI to end with status 1');
		expect(screen).toContain(`[kloud: console closed: VM ${vm.id} stopped`);
		await waitFor(async () => (await readFile(after, 'utf8').catch(() => '')).length > 0, 5000, 'stty -a after');
		expect(await readFile(after, 'utf8')).toBe(await readFile(before, 'utf8'));
	}, 60_000);
});
