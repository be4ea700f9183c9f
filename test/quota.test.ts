import {describe, expect, it} from 'vitest';
import {capacityProblem, cpuBudget, type HostLoad} from '../agent/capacity.js';
import {QuotaGuard} from '../agent/quota-guard.js';
import {limitsFor, othersUsageOf, parseQuotaLimits, quotaConfig, quotaProblem, usageOf, type QuotaLimits, type Usage} from '../agent/quota.js';
import type {Vm} from '../source/protocol/index.js';

describe('quota flags', () => {
	it.each<[string, QuotaLimits]>([
		['vms:4,cpus:8,memory:2048', {vms: 4, cpus: 8, memoryMb: 2048}],
		['vms:0', {vms: 0}],
		[' memory : 512 , cpus:2', {memoryMb: 512, cpus: 2}],
	])('%s', (spec, limits) => {
		expect(parseQuotaLimits(spec)).toEqual(limits);
	});

	it.each([['vms:-1'], ['vms:4,vms:5'], ['disk:10'], ['vms=4'], [''], ['vms:1.5']])('refuses %j', spec => {
		expect(() => parseQuotaLimits(spec)).toThrow(/invalid quota/);
	});

	it('builds a config from --quota (repeatable) and --quota-default', () => {
		expect(quotaConfig([], undefined)).toBeUndefined();
		const config = quotaConfig(['alice=vms:4', 'bob=memory:256'], 'vms:2');
		expect(config).toEqual({tenants: {alice: {vms: 4}, bob: {memoryMb: 256}}, default: {vms: 2}});
		expect(() => quotaConfig(['alice=vms:1', 'alice=vms:2'], undefined)).toThrow(/given twice/);
		expect(() => quotaConfig(['=vms:1'], undefined)).toThrow(/TENANT=/);
		expect(() => quotaConfig(['alice'], undefined)).toThrow(/TENANT=/);
	});

	it.each<[string, string | null, QuotaLimits | undefined]>([
		['a named tenant gets its own', 'alice', {vms: 4}],
		['another gets the default', 'carol', {vms: 2}],
		['no owner: no quota', null, undefined],
		['a name like an Object property is just a name', 'constructor', {vms: 2}],
	])('limits: %s', (_name, tenant, limits) => {
		expect(limitsFor(quotaConfig(['alice=vms:4'], 'vms:2'), tenant)).toEqual(limits);
	});

	it('without a default, unnamed tenants are unlimited', () => {
		expect(limitsFor(quotaConfig(['alice=vms:4'], undefined), 'bob')).toBeUndefined();
		expect(limitsFor(undefined, 'alice')).toBeUndefined();
	});
});

describe('usage', () => {
	const vm = (owner: string | null, state: Vm['state'], cpus = 1, memoryMb = 128) => ({owner, state, cpus, memoryMb}) as Vm;
	it.each<[string, Vm[], Usage]>([
		['counts the tenant\'s running, starting and stopping VMs', [vm('alice', 'running', 2, 256), vm('alice', 'starting'), vm('alice', 'stopping')], {vms: 3, cpus: 4, memoryMb: 512}],
		["not another tenant's, nor owner-less ones", [vm('bob', 'running'), vm(null, 'running')], {vms: 0, cpus: 0, memoryMb: 0}],
		['a crashed VM counts as a VM (it keeps its disk) but holds no CPU or memory', [vm('alice', 'crashed')], {vms: 1, cpus: 0, memoryMb: 0}],
		['a stopped one counts as a VM (its disk is kept) but holds nothing', [vm('alice', 'stopped')], {vms: 1, cpus: 0, memoryMb: 0}],
		['a deleted one counts for nothing', [vm('alice', 'deleted')], {vms: 0, cpus: 0, memoryMb: 0}],
	])('%s', (_name, vms, usage) => {
		expect(usageOf(vms, 'alice')).toEqual(usage);
	});
});

describe("the other hosts' usage during a live migration's handover", () => {
	const vm = (id: string, extra: Partial<Vm> = {}) => ({id, owner: 'alice', state: 'running', cpus: 1, memoryMb: 128, ...extra}) as Vm;
	const moving = vm('vm-moving', {migration: {to: 'host-b', phase: 'switching', percent: 100, startedAt: 1}});
	it('a VM migrating out of this host, already listed by its destination, is counted here only', () => {
		expect(othersUsageOf([vm('vm-moving'), vm('vm-other')], id => id === 'vm-moving', 'alice')).toEqual({vms: 1, cpus: 1, memoryMb: 128});
	});

	it('a VM two other hosts list at once counts once', () => {
		expect(othersUsageOf([moving, vm('vm-moving')], () => false, 'alice')).toEqual({vms: 1, cpus: 1, memoryMb: 128});
	});
});

describe('the quota decision', () => {
	const limits: QuotaLimits = {vms: 4, cpus: 8, memoryMb: 2048};
	const ask = {cpus: 1, memoryMb: 256};
	it.each<[string, QuotaLimits | undefined, Usage, {cpus: number; memoryMb: number}, string | undefined]>([
		['fits', limits, {vms: 3, cpus: 7, memoryMb: 1792}, ask, undefined],
		['no limits', undefined, {vms: 99, cpus: 99, memoryMb: 99_999}, ask, undefined],
		['at the VM limit', limits, {vms: 4, cpus: 4, memoryMb: 1024}, ask, 'tenant alice may run at most 4 VMs (has 4)'],
		['past the vCPUs', limits, {vms: 1, cpus: 7, memoryMb: 256}, {cpus: 2, memoryMb: 256}, 'tenant alice may use at most 8 vCPUs (has 7, asked for 2 more)'],
		['past the memory', limits, {vms: 1, cpus: 1, memoryMb: 1900}, ask, 'tenant alice may use at most 2048 MB of guest memory (has 1900, asked for 256 more)'],
		['a limit of one VM', {vms: 1}, {vms: 1, cpus: 0, memoryMb: 0}, ask, 'tenant alice may run at most 1 VM (has 1)'],
		['a limit of zero: nothing at all', {vms: 0}, {vms: 0, cpus: 0, memoryMb: 0}, ask, 'tenant alice may run at most 0 VMs (has 0)'],
		['only memory limited', {memoryMb: 256}, {vms: 50, cpus: 50, memoryMb: 0}, ask, undefined],
	])('%s', (_name, limitsCase, usage, askCase, problem) => {
		expect(quotaProblem('alice', limitsCase, usage, askCase)).toBe(problem);
	});
});

describe('host capacity', () => {
	const load: HostLoad = {hostId: 'h', vms: 1, maxVms: 4, memoryMb: 256, memoryBudgetMb: 1024, cpus: 2, cpuBudget: 4};
	it.each<[string, Partial<HostLoad>, {memoryMb: number; cpus: number}, string | undefined]>([
		['fits', {}, {memoryMb: 256, cpus: 2}, undefined],
		['exactly fills every budget', {vms: 3}, {memoryMb: 768, cpus: 2}, undefined],
		['full of VMs', {vms: 4}, {memoryMb: 16, cpus: 1}, 'host h is full (4 of 4 VMs)'],
		['memory', {}, {memoryMb: 800, cpus: 1}, 'host h has 768 of its 1024 MB memory budget free, not the 800 MB asked for'],
		['vCPUs', {}, {memoryMb: 16, cpus: 3}, 'host h has 2 of its 4 vCPUs free, not the 3 asked for'],
		['more vCPUs than the host ever hands out', {vms: 0, cpus: 0}, {memoryMb: 16, cpus: 256}, 'host h hands out at most 4 vCPUs in all: a VM with 256 never fits'],
	])('%s', (_name, overrides, ask, problem) => {
		expect(capacityProblem({...load, ...overrides}, ask)).toBe(problem);
	});

	it.each([
		[2, 16, 32],
		[2, 1, 2],
		[2, 0.25, 1],
		[3, 1.5, 4],
	])('%d cores × %d = %d vCPUs', (cores, ratio, budget) => {
		expect(cpuBudget(cores, ratio)).toBe(budget);
	});
});

describe('the quota guard on one host', () => {
	const config = quotaConfig(['alice=vms:2'], undefined);

	it('counts starts under way: of three concurrent starts with room for two, one is refused', async () => {
		let release: () => void = () => {};
		const gate = new Promise<void>(resolve => {
			release = resolve;
		});
		const guard = new QuotaGuard(config, {fleet: async () => ({vms: 0, cpus: 0, memoryMb: 0}), local: () => ({vms: 0, cpus: 0, memoryMb: 0})});
		const start = async () => {
			await gate;
			return {ok: true as const};
		};

		const results = [guard.admit('alice', {cpus: 1, memoryMb: 64}, start), guard.admit('alice', {cpus: 1, memoryMb: 64}, start), guard.admit('alice', {cpus: 1, memoryMb: 64}, start)];
		// The third is decided while the first two are still starting.
		await expect(results[2]).resolves.toEqual({ok: false, code: 'quota_exceeded', reason: 'quota_exceeded: tenant alice may run at most 2 VMs (has 2)'});
		release();
		await expect(Promise.all(results.slice(0, 2))).resolves.toEqual([{ok: true}, {ok: true}]);
	});

	it('adds the fleet and this host; other tenants and owner-less starts are not limited', async () => {
		const guard = new QuotaGuard(config, {fleet: async () => ({vms: 1, cpus: 1, memoryMb: 64}), local: owner => ({vms: owner === 'alice' ? 1 : 9, cpus: 0, memoryMb: 0})});
		const start = async () => ({ok: true as const});
		await expect(guard.admit('alice', {cpus: 1, memoryMb: 64}, start)).resolves.toMatchObject({code: 'quota_exceeded'});
		await expect(guard.admit('bob', {cpus: 1, memoryMb: 64}, start)).resolves.toEqual({ok: true});
		await expect(guard.admit(null, {cpus: 1, memoryMb: 64}, start)).resolves.toEqual({ok: true});
	});

	it('refuses without a list round when this host alone is over the quota (a flood of starts is refused at once)', async () => {
		let rounds = 0;
		const guard = new QuotaGuard(config, {
			async fleet() {
				rounds++;
				return {vms: 0, cpus: 0, memoryMb: 0};
			},
			local: () => ({vms: 2, cpus: 2, memoryMb: 128}),
		});
		const start = async () => ({ok: true as const});
		const results = await Promise.all(Array.from({length: 100}, async () => guard.admit('alice', {cpus: 1, memoryMb: 64}, start)));
		expect(results.every(result => 'code' in result && result.code === 'quota_exceeded')).toBe(true);
		expect(rounds).toBe(0);
		// Under the quota here, the fleet is asked (its usage may be what stops the start).
		const roomy = new QuotaGuard(config, {
			async fleet() {
				rounds++;
				return {vms: 2, cpus: 0, memoryMb: 0};
			},
			local: () => ({vms: 0, cpus: 0, memoryMb: 0}),
		});
		await expect(roomy.admit('alice', {cpus: 1, memoryMb: 64}, start)).resolves.toMatchObject({code: 'quota_exceeded'});
		expect(rounds).toBe(1);
	});

	it('a finished start is no longer reserved', async () => {
		let local = 0;
		const guard = new QuotaGuard(config, {fleet: async () => ({vms: 0, cpus: 0, memoryMb: 0}), local: () => ({vms: local, cpus: 0, memoryMb: 0})});
		// The start failed: no VM, nothing reserved after it.
		await guard.admit('alice', {cpus: 1, memoryMb: 64}, async () => ({ok: false as const}));
		await guard.admit('alice', {cpus: 1, memoryMb: 64}, async () => {
			local++;
			return {ok: true as const};
		});
		await expect(guard.admit('alice', {cpus: 1, memoryMb: 64}, async () => ({ok: true as const}))).resolves.toEqual({ok: true});
	});
});
