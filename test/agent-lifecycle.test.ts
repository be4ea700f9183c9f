/**
 * The agent in-process against a fake Runtime (no broker, no QEMU): the VM lifecycle, restart
 * policies with backoff and a crash-loop limit, power-loss recovery with bounded parallelism, and
 * races between requests. Requests go through `Agent.handle`, as the broker endpoint would send them.
 */
import {mkdtemp, readdir, rm, stat, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pino} from 'pino';
import {afterEach, describe, expect, it} from 'vitest';
import {Agent, type AgentConfig} from '../agent/agent.js';
import type {HandlerResult} from '../source/broker/agent-endpoint.js';
import type {Request, Vm} from '../source/protocol/index.js';
import {FakeRuntime} from './helpers/fake-runtime.js';
import {waitFor} from './helpers/cloud.js';

const dirs: string[] = [];
const agents: Agent[] = [];
const runtimes: FakeRuntime[] = [];

afterEach(async () => {
	for (const agent of agents.splice(0)) {
		await agent.shutdown();
	}

	for (const runtime of runtimes.splice(0)) {
		runtime.powerLoss();
	}

	for (const dir of dirs.splice(0)) {
		await rm(dir, {recursive: true, force: true});
	}
});

async function setup(options: {readonly config?: Partial<AgentConfig>; readonly runtime?: FakeRuntime; readonly dir?: string} = {}): Promise<{agent: Agent; runtime: FakeRuntime; dir: string}> {
	const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'kl-')));
	if (!options.dir) {
		dirs.push(dir);
		await writeFile(join(dir, 'demo.qcow2'), 'base');
	}

	const runtime = options.runtime ?? new FakeRuntime();
	runtimes.push(runtime);
	const config: AgentConfig = {
		amqpUrl: 'amqp://guest:guest@127.0.0.1:1',
		namespace: 'test',
		hostId: 'host-a',
		imagesDir: dir,
		stateDir: join(dir, 's'),
		accel: 'tcg',
		maxVms: 20,
		defaultMemoryMb: 64,
		defaultCpus: 1,
		graceSeconds: 1,
		heartbeatSeconds: 5,
		networkDefault: 'none',
		restartRules: {baseDelayMs: 20, maxDelayMs: 200, limit: 3},
		...options.config,
	};
	const agent = await Agent.create(config, runtime, pino({level: 'silent'}));
	agents.push(agent);
	return {agent, runtime, dir};
}

let nextId = 0;
async function send(agent: Agent, type: Request['type'], body: object, options: {readonly isRepeat?: boolean} = {}): Promise<HandlerResult> {
	const request = {v: 1, id: `r${nextId++}`, from: 'test', ts: Date.now(), type, body} as Request;
	return agent.handle(request, {via: 'host', isRepeat: options.isRepeat ?? false});
}

async function ok(agent: Agent, type: Request['type'], body: object): Promise<Vm> {
	const result = await send(agent, type, body);
	if (result.ok !== true) {
		throw new Error(`${type} failed: ${JSON.stringify(result)}`);
	}

	return result.value as Vm;
}

const vmOf = (agent: Agent, id: string): Vm | undefined => agent.vms().find(vm => vm.id === id);

describe('the lifecycle', () => {
	it('stop keeps the VM and its disk; boot runs it again with the same id, MAC and disk; delete removes everything', async () => {
		const {agent, runtime, dir} = await setup();
		const started = await ok(agent, 'vm.start', {image: 'demo', network: 'user'});
		expect(started).toMatchObject({state: 'running', desired: 'running', restart: 'on-failure', restarts: {count: 0, limit: 3}});
		const disk = join(dir, 's', started.id, 'disk.qcow2');

		const stopped = await ok(agent, 'vm.stop', {vmId: started.id, graceSeconds: 5});
		expect(stopped).toMatchObject({id: started.id, state: 'stopped', desired: 'stopped', exit: 'powered off', pid: null});
		expect(runtime.live(started.id)).toBeUndefined();
		expect(vmOf(agent, started.id)?.state).toBe('stopped');
		await stat(disk);

		// Repeated: the VM as it is.
		expect(await ok(agent, 'vm.stop', {vmId: started.id})).toMatchObject({state: 'stopped'});
		expect(await ok(agent, 'vm.kill', {vmId: started.id})).toMatchObject({state: 'stopped'});

		const booted = await ok(agent, 'vm.boot', {vmId: started.id});
		expect(booted).toMatchObject({id: started.id, mac: started.mac, state: 'running', desired: 'running'});
		expect(booted.pid).not.toBe(started.pid);
		expect(runtime.spawns.filter(id => id === started.id)).toHaveLength(2);
		expect(await ok(agent, 'vm.boot', {vmId: started.id})).toMatchObject({state: 'running', pid: booted.pid});

		const deleted = await ok(agent, 'vm.delete', {vmId: started.id});
		expect(deleted).toMatchObject({id: started.id, state: 'deleted'});
		expect(runtime.live(started.id)).toBeUndefined();
		expect(vmOf(agent, started.id)).toBeUndefined();
		expect(await readdir(join(dir, 's'))).not.toContain(started.id);
		// Remembered: a repeated delete answers the same; other requests say it is deleted.
		expect(await ok(agent, 'vm.delete', {vmId: started.id})).toMatchObject({id: started.id, state: 'deleted'});
		expect(await send(agent, 'vm.boot', {vmId: started.id})).toMatchObject({ok: false, code: 'invalid_state', reason: expect.stringContaining('deleted')});
	});

	it('refuses a request the state does not allow with invalid_state, saying what works', async () => {
		const {agent} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		await ok(agent, 'vm.kill', {vmId: vm.id});
		const refused = await send(agent, 'vm.reboot', {vmId: vm.id});
		expect(refused).toMatchObject({ok: false, code: 'invalid_state'});
		expect((refused as {reason: string}).reason).toMatch(/stopped: boot it/);
		expect(await send(agent, 'vm.boot', {vmId: 'vm-zzzzzzzz'})).toMatchObject({ok: false, code: 'unknown_vm'});
	});

	it('reboot --hard resets the guest in the same process; a soft reboot powers it off and boots it again', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		const hard = await ok(agent, 'vm.reboot', {vmId: vm.id, hard: true});
		expect(hard).toMatchObject({state: 'running', pid: vm.pid});
		expect(runtime.live(vm.id)?.resets).toBe(1);

		const soft = await ok(agent, 'vm.reboot', {vmId: vm.id});
		expect(soft).toMatchObject({state: 'running', desired: 'running', restarts: {count: 0}});
		expect(soft.pid).not.toBe(vm.pid);
		expect(runtime.live(vm.id)?.pid).toBe(soft.pid);
	});

	it('a reboot seen again (resent or redelivered) does not reboot twice; a new reboot does', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		const soft = await ok(agent, 'vm.reboot', {vmId: vm.id});
		const repeated = await send(agent, 'vm.reboot', {vmId: vm.id}, {isRepeat: true});
		expect(repeated).toMatchObject({ok: true, value: {pid: soft.pid}});
		expect(runtime.spawns).toHaveLength(2);
		expect((await ok(agent, 'vm.reboot', {vmId: vm.id})).pid).not.toBe(soft.pid);
		expect(runtime.spawns).toHaveLength(3);
	});

	it('a reboot repeated while the first is still under way does not reboot a second time', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		const [first, repeated] = await Promise.all([send(agent, 'vm.reboot', {vmId: vm.id}), send(agent, 'vm.reboot', {vmId: vm.id}, {isRepeat: true})]);
		expect(first).toMatchObject({ok: true});
		expect(repeated).toMatchObject({ok: true, value: {pid: (first as {value: Vm}).value.pid}});
		expect(runtime.spawns).toHaveLength(2);
	});

	it('a delete of a running VM kills it (grace 0) and the id is remembered; a start retried with its token gets the deleted VM, not a new one', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo', clientToken: 'tok-1'});
		expect(await ok(agent, 'vm.delete', {vmId: vm.id})).toMatchObject({state: 'deleted'});
		expect(runtime.live(vm.id)).toBeUndefined();
		expect(await ok(agent, 'vm.start', {image: 'demo', clientToken: 'tok-1'})).toMatchObject({id: vm.id, state: 'deleted'});
		expect(runtime.spawns).toHaveLength(1);
	});

	it('a disk smaller than the image is refused; the disk size and its use are listed', async () => {
		const {agent} = await setup();
		expect(await send(agent, 'vm.start', {image: 'demo', diskMb: 5})).toMatchObject({ok: false, code: 'bad_request', reason: expect.stringContaining('smaller than image "demo" (10 MiB)')});
		const vm = await ok(agent, 'vm.start', {image: 'demo', diskMb: 64});
		const listed = (await agent.snapshot()).vms.find(entry => entry.id === vm.id);
		expect(listed?.disk?.sizeBytes).toBe(64 * 1024 * 1024);
		expect(listed?.disk?.usedBytes).toBeGreaterThan(0);
	});

	it('stopped VMs count towards --max-vms but not towards memory; a boot checks capacity like a start', async () => {
		const {agent} = await setup({config: {maxVms: 2, memoryBudgetMb: 100}});
		const a = await ok(agent, 'vm.start', {image: 'demo'});
		await ok(agent, 'vm.stop', {vmId: a.id, graceSeconds: 0});
		const b = await ok(agent, 'vm.start', {image: 'demo'});
		// Memory: a (stopped) holds none, b holds 64 of 100 MB: a does not fit again while b runs.
		expect(await send(agent, 'vm.boot', {vmId: a.id})).toMatchObject({ok: false, code: 'no_capacity'});
		// Two VMs held (one stopped): a third does not fit.
		expect(await send(agent, 'vm.start', {image: 'demo', memoryMb: 16})).toMatchObject({ok: false, code: 'no_capacity', reason: expect.stringContaining('2 of 2 VMs')});
		await ok(agent, 'vm.stop', {vmId: b.id, graceSeconds: 0});
		expect(await ok(agent, 'vm.boot', {vmId: a.id})).toMatchObject({state: 'running'});
	});
});

describe('restart policies', () => {
	it('on-failure: a crashed or SIGKILLed QEMU is restarted after its backoff; a guest power-off is a stop', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		runtime.live(vm.id)!.end({code: null, signal: 'SIGKILL'});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'running' && runtime.live(vm.id) !== undefined, 5000, 'the VM restarted');
		expect(vmOf(agent, vm.id)).toMatchObject({restarts: {count: 1, limit: 3}, exit: 'killed by SIGKILL', desired: 'running'});

		runtime.live(vm.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(agent, vm.id)?.restarts?.count === 2 && vmOf(agent, vm.id)?.state === 'running', 5000, 'the second restart');

		// The guest powers itself off: QEMU exits 0 without "terminating on signal" in its log.
		runtime.live(vm.id)!.end({code: 0, signal: null});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'stopped', 5000, 'stopped after the guest powered off');
		expect(vmOf(agent, vm.id)).toMatchObject({desired: 'stopped', exit: 'guest powered off'});
		expect(runtime.spawns.filter(id => id === vm.id)).toHaveLength(3);
	});

	it('on-failure: a SIGKILLed QEMU right after a soft and a hard reboot is restarted and counted, not taken for a power-off', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		const soft = await ok(agent, 'vm.reboot', {vmId: vm.id});
		const hard = await ok(agent, 'vm.reboot', {vmId: vm.id, hard: true});
		expect(hard).toMatchObject({state: 'running', pid: soft.pid});
		runtime.live(vm.id)!.end({code: null, signal: 'SIGKILL'});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'running' && runtime.live(vm.id) !== undefined && runtime.live(vm.id)!.pid !== hard.pid, 5000, 'the VM restarted');
		expect(vmOf(agent, vm.id)).toMatchObject({restarts: {count: 1, limit: 3}, exit: 'killed by SIGKILL', desired: 'running'});
	});

	it('while the agent takes in a process end, a list never shows the VM running without a process', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		runtime.live(vm.id)!.end({code: null, signal: 'SIGKILL'});
		const seen: Array<Pick<Vm, 'state' | 'pid'>> = [];
		while (vmOf(agent, vm.id)?.state === 'running' && seen.length < 10_000) {
			const {state, pid} = vmOf(agent, vm.id)!;
			seen.push({state, pid});
			await new Promise(resolve => setImmediate(resolve));
		}

		expect(seen.filter(entry => entry.pid === null)).toEqual([]);
		expect(vmOf(agent, vm.id)).toMatchObject({state: 'starting', pid: null, exit: 'killed by SIGKILL', restarts: {count: 1}});
	});

	it('always: a guest power-off is restarted too', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo', restart: 'always'});
		runtime.live(vm.id)!.end({code: 0, signal: null});
		await waitFor(() => runtime.spawns.filter(id => id === vm.id).length === 2 && vmOf(agent, vm.id)?.state === 'running', 5000, 'restarted after a power-off');
	});

	it('no: a crash leaves it crashed', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo', restart: 'no'});
		runtime.live(vm.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'crashed', 5000, 'crashed');
		// A later event shows nothing restarted it: a boot by hand is the second spawn.
		await ok(agent, 'vm.boot', {vmId: vm.id});
		expect(runtime.spawns.filter(id => id === vm.id)).toHaveLength(2);
	});

	it('a crash loop backs off exponentially and gives up after the limit: crashed, with its count and last exit', async () => {
		const {agent, runtime} = await setup({config: {restartRules: {baseDelayMs: 40, maxDelayMs: 1000, limit: 3}}});
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		const times: number[] = [];
		for (let crash = 0; crash < 4; crash++) {
			const spawnsBefore = runtime.spawns.length;
			await waitFor(() => runtime.live(vm.id)?.isListening === true && vmOf(agent, vm.id)?.state === 'running', 5000, 'the VM up');
			times.push(Date.now());
			runtime.live(vm.id)!.end({code: 1, signal: null});
			if (crash < 3) {
				await waitFor(() => runtime.spawns.length > spawnsBefore, 5000, `restart ${crash + 1}`);
			}
		}

		await waitFor(() => vmOf(agent, vm.id)?.state === 'crashed', 5000, 'given up');
		expect(vmOf(agent, vm.id)).toMatchObject({state: 'crashed', restarts: {count: 3, limit: 3}, exit: 'exit code 1', desired: 'running'});
		expect(runtime.spawns.filter(id => id === vm.id)).toHaveLength(4);
		// Each wait at least its backoff: 40, 80, 160 ms.
		expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(40);
		expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(80);
		expect(times[3]! - times[2]!).toBeGreaterThanOrEqual(160);
		// A boot by hand starts counting afresh.
		expect(await ok(agent, 'vm.boot', {vmId: vm.id})).toMatchObject({state: 'running', restarts: {count: 0}});
	});

	it('a boot whose QEMU dies before QMP answers is answered start_failed, and retried by its policy', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		await ok(agent, 'vm.kill', {vmId: vm.id});
		runtime.failingSpawns.set(vm.id, 2);
		expect(await send(agent, 'vm.boot', {vmId: vm.id})).toMatchObject({ok: false, code: 'start_failed'});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'running', 5000, 'running after two failed boots');
		expect(vmOf(agent, vm.id)).toMatchObject({restarts: {count: 2}});
		expect(runtime.spawns.filter(id => id === vm.id)).toHaveLength(4);
	});

	it('a SIGTERM (QEMU exits 0 but says "terminating on signal") is a failure, not a power-off', async () => {
		const {agent, runtime, dir} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		await writeFile(join(dir, 's', vm.id, 'qemu.log'), 'qemu-system-x86_64: terminating on signal 15 from pid 1 (init)\n', {flag: 'a'});
		runtime.live(vm.id)!.end({code: 0, signal: null});
		await waitFor(() => runtime.spawns.length === 2 && vmOf(agent, vm.id)?.state === 'running', 5000, 'restarted');
		expect(vmOf(agent, vm.id)?.exit).toMatch(/^terminating on signal 15/);
	});
});

describe('power loss and agent restarts', () => {
	it('a restarted agent adopts running VMs and notices an adopted VM dying (restarting it per policy)', async () => {
		const {agent, runtime, dir} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		await agent.shutdown();
		agents.splice(agents.indexOf(agent), 1);
		const {agent: second} = await setup({dir, runtime});
		expect(vmOf(second, vm.id)).toMatchObject({state: 'running', pid: vm.pid});
		const stopped = await ok(second, 'vm.stop', {vmId: vm.id, graceSeconds: 5});
		expect(stopped).toMatchObject({state: 'stopped', exit: 'powered off'});
	});

	it('boots again every VM meant to run, at most N at once; stopped and crashed ones stay as they were', async () => {
		const first = await setup();
		const running: Vm[] = [];
		for (let index = 0; index < 6; index++) {
			running.push(await ok(first.agent, 'vm.start', {image: 'demo'}));
		}

		// One was restarted by its policy before: it runs, with its last exit on record.
		first.runtime.live(running[0]!.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(first.agent, running[0]!.id)?.state === 'running' && first.runtime.live(running[0]!.id) !== undefined, 5000, 'restarted');
		const stopped = await ok(first.agent, 'vm.start', {image: 'demo'});
		await ok(first.agent, 'vm.stop', {vmId: stopped.id, graceSeconds: 0});
		const crashed = await ok(first.agent, 'vm.start', {image: 'demo', restart: 'no'});
		first.runtime.live(crashed.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(first.agent, crashed.id)?.state === 'crashed', 5000, 'crashed');

		// Power loss: every process gone, nobody told.
		await first.agent.shutdown();
		agents.splice(agents.indexOf(first.agent), 1);
		first.runtime.powerLoss();
		const fresh = new FakeRuntime({bootMs: 50});
		const {agent} = await setup({dir: first.dir, runtime: fresh, config: {recoveryParallelism: 2}});
		expect(vmOf(agent, running[0]!.id)?.state).toBe('starting');
		await agent.recoverAll();
		for (const vm of running) {
			expect(vmOf(agent, vm.id)).toMatchObject({state: 'running', mac: vm.mac, desired: 'running'});
			expect(fresh.live(vm.id)).toBeDefined();
		}

		expect(fresh.maxBooting).toBe(2);
		expect(vmOf(agent, stopped.id)?.state).toBe('stopped');
		expect(vmOf(agent, crashed.id)?.state).toBe('crashed');
		expect(fresh.spawns.sort()).toEqual(running.map(vm => vm.id).sort());
	});

	it('a restart waiting in its backoff when the agent went down is booted by the next agent', async () => {
		const first = await setup({config: {restartRules: {baseDelayMs: 60_000, maxDelayMs: 60_000, limit: 3}}});
		const vm = await ok(first.agent, 'vm.start', {image: 'demo'});
		first.runtime.live(vm.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(first.agent, vm.id)?.state === 'starting', 5000, 'waiting for its restart');
		await first.agent.shutdown();
		agents.splice(agents.indexOf(first.agent), 1);
		const fresh = new FakeRuntime();
		const {agent} = await setup({dir: first.dir, runtime: fresh});
		await agent.recoverAll();
		expect(vmOf(agent, vm.id)).toMatchObject({state: 'running'});
	});
});

describe('races', () => {
	it('a stop during a boot waits for the boot, then stops', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		await ok(agent, 'vm.kill', {vmId: vm.id});
		runtime.bootMs = 200;
		const boot = send(agent, 'vm.boot', {vmId: vm.id});
		const stop = send(agent, 'vm.stop', {vmId: vm.id, graceSeconds: 5});
		expect(await boot).toMatchObject({ok: true, value: {state: 'running'}});
		expect(await stop).toMatchObject({ok: true, value: {state: 'stopped'}});
		expect(runtime.live(vm.id)).toBeUndefined();
		expect(vmOf(agent, vm.id)?.state).toBe('stopped');
	});

	it('two boots at once make one process', async () => {
		const {agent, runtime} = await setup();
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		await ok(agent, 'vm.kill', {vmId: vm.id});
		runtime.bootMs = 100;
		const [a, b] = await Promise.all([send(agent, 'vm.boot', {vmId: vm.id}), send(agent, 'vm.boot', {vmId: vm.id})]);
		expect(a).toEqual(b);
		expect(runtime.spawns.filter(id => id === vm.id)).toHaveLength(2);
		expect([...runtime.processes.values()].filter(qemu => qemu.vmId === vm.id && qemu.isAlive)).toHaveLength(1);
	});

	it('a delete during a restart backoff cancels the restart and removes the VM', async () => {
		const {agent, runtime, dir} = await setup({config: {restartRules: {baseDelayMs: 300, maxDelayMs: 300, limit: 3}}});
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		runtime.live(vm.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'starting' && vmOf(agent, vm.id)?.restarts?.count === 1, 5000, 'in its backoff');
		expect(await ok(agent, 'vm.delete', {vmId: vm.id})).toMatchObject({state: 'deleted'});
		// Past the backoff: a VM started after it proves the timer had its chance.
		await new Promise(resolve => setTimeout(resolve, 400));
		const other = await ok(agent, 'vm.start', {image: 'demo'});
		expect(runtime.spawns.filter(id => id === vm.id)).toHaveLength(1);
		expect(runtime.live(other.id)).toBeDefined();
		expect(await readdir(join(dir, 's'))).not.toContain(vm.id);
	});

	it('a stop during a restart backoff leaves it stopped', async () => {
		const {agent, runtime} = await setup({config: {restartRules: {baseDelayMs: 300, maxDelayMs: 300, limit: 3}}});
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		runtime.live(vm.id)!.end({code: 1, signal: null});
		await waitFor(() => vmOf(agent, vm.id)?.restarts?.count === 1, 5000, 'in its backoff');
		expect(await ok(agent, 'vm.stop', {vmId: vm.id})).toMatchObject({state: 'stopped', desired: 'stopped'});
		await new Promise(resolve => setTimeout(resolve, 400));
		expect(vmOf(agent, vm.id)?.state).toBe('stopped');
		expect(runtime.spawns).toHaveLength(1);
	});

	it('a kill during a graceful stop of a guest that ignores the power button ends it at once', async () => {
		const {agent, runtime} = await setup();
		runtime.guestHandlesPowerButton = false;
		const vm = await ok(agent, 'vm.start', {image: 'demo'});
		const stop = send(agent, 'vm.stop', {vmId: vm.id, graceSeconds: 60});
		await waitFor(() => vmOf(agent, vm.id)?.state === 'stopping', 5000, 'stopping');
		const kill = await send(agent, 'vm.kill', {vmId: vm.id});
		expect(kill).toMatchObject({ok: true, value: {state: 'stopped'}});
		expect(await stop).toMatchObject({ok: true, value: {state: 'stopped'}});
	});
});

describe('load', () => {
	it("a running VM's load is measured between two samples of its process, sent in lists and unchanged replies, and gone once it stops", async () => {
		const {agent, runtime} = await setup();
		const started = await ok(agent, 'vm.start', {image: 'demo', cpus: 2});
		await agent.sampleLoads();
		expect(vmOf(agent, started.id)?.load).toBeUndefined();
		const pid = runtime.live(started.id)!.pid;
		runtime.cpuTicks.set(pid, 100);
		const before = Date.now();
		// 250 ms: at least 200 between the samples even when the timer fires a millisecond early
		// (CI once measured 199 ms of a 200 ms wait: 251 %).
		await new Promise(resolve => setTimeout(resolve, 250));
		await agent.sampleLoads();
		const {load} = vmOf(agent, started.id)!;
		// 1 s of CPU over ≥ 200 ms on 2 vCPUs: at most 250 %, and well over 50 %.
		expect(load).toMatchObject({rssBytes: 100 * 1024 * 1024});
		expect(load!.cpuPercent).toBeGreaterThan(50);
		expect(load!.cpuPercent).toBeLessThanOrEqual(250);
		expect(load!.sampledAt).toBeGreaterThanOrEqual(before);

		const full = (await send(agent, 'vm.list', {})) as {ok: true; value: {vmsVersion: string; vms: Vm[]}};
		expect(full.value.vms[0]?.load).toEqual(load);
		runtime.cpuTicks.set(pid, 100);
		await agent.sampleLoads();
		const unchanged = (await send(agent, 'vm.list', {known: {'host-a': full.value.vmsVersion}})) as {ok: true; value: {vmsUnchanged?: true; loads?: Record<string, unknown>}};
		expect(unchanged.value).toMatchObject({vmsUnchanged: true, loads: {[started.id]: {cpuPercent: 0}}});

		await ok(agent, 'vm.stop', {vmId: started.id});
		await agent.sampleLoads();
		expect(vmOf(agent, started.id)?.load).toBeUndefined();
	});

	it('vm.probe answers not open, saying why, for a VM the host cannot reach; unknown VMs are unknown_vm', async () => {
		const {agent} = await setup();
		const started = await ok(agent, 'vm.start', {image: 'demo', network: 'none'});
		expect(await send(agent, 'vm.probe', {vmId: started.id, port: 22})).toEqual({
			ok: true,
			value: {vmId: started.id, host: 'host-a', port: 22, address: null, isOpen: false, ms: 0, error: `VM ${started.id} has network none: the host cannot reach it (use private or public)`},
		});
		expect(await send(agent, 'vm.probe', {vmId: 'vm-zzzzzzzz', port: 22})).toMatchObject({ok: false, code: 'unknown_vm'});
	});
});
