/**
 * The spine end to end: real RabbitMQ, two real agents, real QEMU (TCG, blank image: the
 * firmware runs and waits), driven through the `kloud-tui` CLI as a script would.
 */
import {existsSync} from 'node:fs';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {createCloud, pidByName, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';

let cloud: Cloud;
let hostA: AgentHandle;
let hostB: AgentHandle;

beforeAll(async () => {
	cloud = await createCloud('spine');
	[hostA, hostB] = await Promise.all([cloud.startAgent('host-a'), cloud.startAgent('host-b')]);
});

afterAll(async () => {
	await cloud?.cleanup();
});

type Vm = {id: string; host: string; image: string; state: string; pid: number | null; exit: string | null};
type ListJson = {vms: Vm[]; hosts: Array<{id: string; answered: boolean; vmCount?: number}>; durationMs: number};

describe('two agents on one broker', () => {
	it('lists both hosts, and the list ends as soon as both answered, long before the timeout', async () => {
		// Wait until each agent has heard the other's heartbeat, so either can tell who to wait for.
		await waitFor(async () => {
			const hosts = await cloud.cliJson<Array<{id: string}>>(['hosts']);
			return hosts.length === 2;
		}, 10_000, 'both hosts in the roster');
		const result = await cloud.cli(['list', '--json', '--timeout', '30']);
		expect(result.code).toBe(0);
		const list = JSON.parse(result.stdout) as ListJson;
		expect(list.hosts.map(host => [host.id, host.answered])).toEqual([
			['host-a', true],
			['host-b', true],
		]);
		// The round ended when both had answered, not at its 30 s timeout (a wide margin: CI is a loaded 2-core box).
		expect(list.durationMs).toBeLessThan(10_000);
	});

	it('start → the vm-<id> process runs and list shows it on its host → stop → stopped, disk kept', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank']);
		expect(vm.id).toMatch(/^vm-[a-z]{8}$/);
		expect(vm.state).toBe('running');
		expect(['host-a', 'host-b']).toContain(vm.host);
		const pid = await pidByName(vm.id);
		expect(pid).toBe(vm.pid);

		const list = await cloud.cliJson<ListJson>(['list']);
		expect(list.vms.find(entry => entry.id === vm.id)).toMatchObject({host: vm.host, image: 'blank', state: 'running'});

		const stopped = await cloud.cliJson<Vm>(['stop', vm.id, '--grace', '1']);
		expect(stopped).toMatchObject({id: vm.id, state: 'stopped'});
		expect(await pidByName(vm.id)).toBeUndefined();
		// Stopped, not gone: the VM and its disk are kept until deleted.
		const owner = vm.host === 'host-a' ? hostA : hostB;
		expect(existsSync(`${owner.stateDir}/${vm.id}/disk.qcow2`)).toBe(true);
		const after = await cloud.cliJson<ListJson>(['list']);
		expect(after.vms.find(entry => entry.id === vm.id)).toMatchObject({state: 'stopped', pid: null});
	});

	it('a start on a named host lands there, and kill reaches only that owner', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-b', '--memory', '96']);
		expect(vm).toMatchObject({host: 'host-b', state: 'running'});
		const killed = await cloud.cliJson<Vm>(['stop', vm.id, '--kill']);
		expect(killed).toMatchObject({id: vm.id, host: 'host-b', state: 'stopped', exit: 'killed'});
		expect(await pidByName(vm.id)).toBeUndefined();
		const requestsFor = (agent: AgentHandle, type: string) =>
			agent
				.logs()
				.split('\n')
				.filter(line => line.includes(`"type":"${type}"`) && line.includes('"msg":"request"'));
		expect(requestsFor(hostB, 'vm.kill')).toHaveLength(1);
		expect(requestsFor(hostA, 'vm.kill')).toHaveLength(0);
		expect(requestsFor(hostA, 'vm.start').some(line => line.includes(vm.id))).toBe(false);
	});

	it('refuses an unknown image, a path as image name and an unknown VM with one clear line', async () => {
		const unknown = await cloud.cli(['start', '--image', 'nosuch', '--host', 'host-a']);
		expect(unknown.code).toBe(1);
		expect(unknown.stderr.trim()).toBe('kloud-tui: host-a: no image "nosuch" on host host-a (it has: blank)');

		const path = await cloud.cli(['start', '--image', '../../etc/passwd']);
		expect(path.code).toBe(2);
		expect(path.stderr).toContain('not a path');
		expect(path.stderr.trim().split('\n')).toHaveLength(1);

		const vm = await cloud.cli(['stop', 'vm-zzzzzzzz']);
		expect(vm.code).toBe(1);
		expect(vm.stderr.trim()).toBe('kloud-tui: no VM vm-zzzzzzzz on any of 2 hosts that answered');

		const host = await cloud.cli(['start', '--image', 'blank', '--host', 'host-z']);
		expect(host.code).toBe(1);
		expect(host.stderr.trim()).toBe('kloud-tui: host host-z is not connected to the broker');
	});

	it('an agent restarted while its VM runs adopts it, and can still stop it', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-a']);
		await hostA.stop('SIGTERM');
		expect(await pidByName(vm.id)).toBe(vm.pid);

		hostA = await cloud.startAgent('host-a');
		expect(hostA.logs()).toContain('adopted running VM');
		const list = await cloud.cliJson<ListJson>(['list']);
		expect(list.vms.find(entry => entry.id === vm.id)).toMatchObject({host: 'host-a', state: 'running', pid: vm.pid});

		const killed = await cloud.cliJson<Vm>(['stop', vm.id, '--kill']);
		expect(killed.state).toBe('stopped');
		expect(await pidByName(vm.id)).toBeUndefined();
	});

	it('restarts a VM whose QEMU died on its own (restart policy on-failure, the default), and lists it as stopped once stopped', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-b']);
		process.kill(vm.pid!, 'SIGKILL');
		let restarted: Vm | undefined;
		await waitFor(async () => {
			const list = await cloud.cliJson<ListJson>(['list']);
			restarted = list.vms.find(entry => entry.id === vm.id);
			return restarted?.state === 'running' && restarted.pid !== vm.pid;
		}, 15_000, 'the VM to be restarted');
		expect(restarted?.exit).toContain('SIGKILL');
		await cloud.cliJson(['stop', vm.id]);
		expect((await cloud.cliJson<ListJson>(['list'])).vms.find(entry => entry.id === vm.id)?.state).toBe('stopped');
	});

	it('console returns the tail of a VM serial log from its owner, and refuses an unknown VM', async () => {
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'blank', '--host', 'host-a']);
		const owner = hostA;
		const {appendFile} = await import('node:fs/promises');
		await appendFile(`${owner.stateDir}/${vm.id}/console.log`, 'hello from the guest\r\nKLOUD-READY test\r\n');
		const tail = await cloud.cli(['console', vm.id]);
		expect(tail.code).toBe(0);
		expect(tail.stdout).toContain('hello from the guest\nKLOUD-READY test\n');
		const json = await cloud.cliJson<{vmId: string; host: string; data: string; sizeBytes: number}>(['console', vm.id, '--bytes', '18']);
		expect(json).toMatchObject({vmId: vm.id, host: 'host-a', data: 'KLOUD-READY test\r\n'});
		expect(json.sizeBytes).toBeGreaterThanOrEqual(40);
		// A stopped VM keeps its console log with the rest of it.
		await cloud.cliJson(['stop', vm.id, '--kill']);
		expect((await cloud.cli(['console', vm.id])).stdout).toContain('KLOUD-READY test');
		const gone = await cloud.cli(['console', 'vm-neverwas']);
		expect(gone.code).toBe(1);
		expect(gone.stderr).toContain('no VM vm-neverwas');
	});

	it('refuses a second agent with the same host id', async () => {
		await expect(cloud.startAgent('host-b')).rejects.toThrow(/another agent with host id "host-b"/);
	});
});
