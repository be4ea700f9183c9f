/** The CLI's lifecycle subcommands over a fake client: what `delete` asks, and that a no sends nothing. */
import {describe, expect, it} from 'vitest';
import type {KloudClient} from '../source/broker/client.js';
import {deleteCommand, deleteQuestion, rebootCommand} from '../source/commands.js';
import {describeState, formatVms} from '../source/format.js';
import type {Vm} from '../source/protocol/index.js';

const VM: Vm = {
	id: 'vm-abcdefgh', host: 'host-a', image: 'demo', state: 'running', memoryMb: 256, cpus: 1, pid: 100, createdAt: 1, uptimeSeconds: 5,
	ip: '10.77.0.12', mac: '52:54:00:00:00:01', exit: null, desired: 'running', restart: 'on-failure', restarts: {count: 0, limit: 5},
	disk: {sizeBytes: 10 * 1024 ** 3, usedBytes: 12 * 1024 ** 2},
};

function fakeClient(vm: Vm = VM) {
	const calls: string[] = [];
	const client = {
		async findVm(vmId: string) {
			calls.push(`find ${vmId}`);
			return vm;
		},
		async delete(vmId: string, options: {host?: string; graceSeconds?: number}) {
			calls.push(`delete ${vmId} host=${options.host ?? '?'} grace=${options.graceSeconds ?? '-'}`);
			return {...vm, state: 'deleted' as const, pid: null};
		},
		async reboot(vmId: string, options: {host?: string; hard?: boolean}) {
			calls.push(`reboot ${vmId} hard=${String(options.hard)}`);
			return vm;
		},
	};
	return {client: client as unknown as KloudClient, calls};
}

describe('delete', () => {
	it('names what is lost: the disk (with its use), the seed and the IP', () => {
		expect(deleteQuestion(VM)).toBe('delete vm-abcdefgh on host-a (running): its disk (12M/10G used), user-data seed and IP 10.77.0.12 are lost for good');
		expect(deleteQuestion({...VM, ip: null, disk: undefined, state: 'stopped'})).toBe('delete vm-abcdefgh on host-a (stopped): its disk, user-data seed and IP lease are lost for good');
	});

	it('sends nothing when the operator says no', async () => {
		const {client, calls} = fakeClient();
		const questions: string[] = [];
		const output = await deleteCommand(client, VM.id, {confirm: async question => (questions.push(question), false)}, {json: false, timeoutMs: 1000});
		expect(output.stdout).toBe('kept vm-abcdefgh (not deleted)');
		expect(questions).toEqual([deleteQuestion(VM)]);
		expect(calls).toEqual(['find vm-abcdefgh']);
	});

	it('deletes on the host it asked about once the operator says yes', async () => {
		const {client, calls} = fakeClient();
		const output = await deleteCommand(client, VM.id, {graceSeconds: 2, confirm: async () => true}, {json: true, timeoutMs: 1000});
		expect(JSON.parse(output.stdout)).toMatchObject({id: VM.id, state: 'deleted'});
		expect(calls).toEqual(['find vm-abcdefgh', 'delete vm-abcdefgh host=host-a grace=2']);
	});

	it('asks nothing with --yes (no confirm)', async () => {
		const {client, calls} = fakeClient();
		const output = await deleteCommand(client, VM.id, {}, {json: false, timeoutMs: 1000});
		expect(output.stdout).toBe('deleted vm-abcdefgh on host-a (disk, seed, TAP and lease removed)');
		expect(calls).toEqual(['delete vm-abcdefgh host=? grace=-']);
	});
});

describe('reboot', () => {
	it('says which kind of reboot it asked for', async () => {
		const {client, calls} = fakeClient();
		expect((await rebootCommand(client, VM.id, {hard: true}, {json: false, timeoutMs: 1000})).stdout).toBe('rebooted vm-abcdefgh on host-a (hard reset)');
		expect(calls).toEqual(['reboot vm-abcdefgh hard=true']);
	});
});

describe('STATE says why', () => {
	it.each([
		[{state: 'crashed', restarts: {count: 5, limit: 5}, exit: 'killed by SIGKILL'}, 'crashed (restarts 5/5, killed by SIGKILL)'],
		[{state: 'crashed', restarts: {count: 0, limit: 5}, exit: 'exit 1'}, 'crashed (exit 1)'],
		[{state: 'running', restarts: {count: 2, limit: 5}}, 'running (restarts 2/5)'],
		[{state: 'starting', restarts: {count: 3, limit: 5}}, 'starting (restarts 3/5)'],
		[{state: 'running'}, 'running'],
		[{state: 'stopped', exit: 'powered off'}, 'stopped (powered off)'],
		[{state: 'stopped'}, 'stopped'],
		[{state: 'deleting'}, 'deleting'],
	] as Array<[Partial<Vm>, string]>)('%j → %s', (patch, text) => {
		expect(describeState({...VM, ...patch})).toBe(text);
	});

	it('lists stopped VMs with their state and disk', () => {
		expect(formatVms([{...VM, state: 'stopped', pid: null, uptimeSeconds: null, exit: 'powered off'}]).split('\n')).toEqual([
			'HOST    VM           IMAGE  STATE                  IP          MEM   CPUS  PID  UPTIME  DISK',
			'host-a  vm-abcdefgh  demo   stopped (powered off)  10.77.0.12  256M  1     -    -       12M/10G',
		]);
	});
});
