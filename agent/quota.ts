/**
 * Per-tenant quotas: how many VMs, vCPUs and MB of guest memory one tenant (the RabbitMQ user whose
 * start made a VM) may hold across the whole fleet. Pure: parsing the flags, adding up a tenant's
 * usage from VM lists, and the decision with a message that names the limit.
 */
import {oneCopyPerVm, type Vm} from '../source/protocol/index.js';

export type QuotaLimits = {
	readonly vms?: number;
	readonly cpus?: number;
	readonly memoryMb?: number;
};

export type QuotaConfig = {
	/** Limits per tenant, by RabbitMQ user name. */
	readonly tenants: Readonly<Record<string, QuotaLimits>>;
	/** Limits of every tenant not named; absent: unlimited. */
	readonly default?: QuotaLimits;
};

export type Usage = {readonly vms: number; readonly cpus: number; readonly memoryMb: number};

export const NO_USAGE: Usage = {vms: 0, cpus: 0, memoryMb: 0};

export class QuotaSpecError extends Error {
	override name = 'QuotaSpecError';
}

const KEYS: Record<string, keyof QuotaLimits> = {vms: 'vms', cpus: 'cpus', memory: 'memoryMb'};

/** `vms:4,cpus:8,memory:2048` (any subset; memory in MB) → limits. */
export function parseQuotaLimits(spec: string): QuotaLimits {
	const limits: Record<string, number> = {};
	for (const part of spec.split(',')) {
		const match = /^\s*(\w+)\s*:\s*(\d+)\s*$/.exec(part);
		const key = match ? KEYS[match[1]!] : undefined;
		if (!match || !key) {
			throw new QuotaSpecError(`invalid quota "${spec}": expected e.g. vms:4,cpus:8,memory:2048 (vms, cpus, memory in MB; any of them)`);
		}

		if (key in limits) {
			throw new QuotaSpecError(`invalid quota "${spec}": ${match[1]} given twice`);
		}

		limits[key] = Number(match[2]);
	}

	return limits;
}

/** `alice=vms:4,cpus:8` → the tenant and its limits. */
export function parseTenantQuota(text: string): {readonly tenant: string; readonly limits: QuotaLimits} {
	const index = text.indexOf('=');
	const tenant = index > 0 ? text.slice(0, index).trim() : '';
	if (tenant === '') {
		throw new QuotaSpecError(`invalid --quota "${text}": expected TENANT=vms:N,cpus:N,memory:MB`);
	}

	return {tenant, limits: parseQuotaLimits(text.slice(index + 1))};
}

/** The `--quota` (repeatable) and `--quota-default` flags → a config, or undefined when there are no quotas. */
export function quotaConfig(quotas: readonly string[], defaultSpec: string | undefined): QuotaConfig | undefined {
	if (quotas.length === 0 && defaultSpec === undefined) {
		return undefined;
	}

	const tenants: Record<string, QuotaLimits> = {};
	for (const text of quotas) {
		const {tenant, limits} = parseTenantQuota(text);
		if (tenant in tenants) {
			throw new QuotaSpecError(`--quota for tenant ${tenant} given twice`);
		}

		tenants[tenant] = limits;
	}

	return {tenants, ...(defaultSpec === undefined ? {} : {default: parseQuotaLimits(defaultSpec)})};
}

/** The limits that apply to `tenant`: its own, else the default; undefined when none do (no owner, or no quota for it). */
export function limitsFor(config: QuotaConfig | undefined, tenant: string | null): QuotaLimits | undefined {
	if (!config || tenant === null) {
		return undefined;
	}

	return Object.hasOwn(config.tenants, tenant) ? config.tenants[tenant] : config.default;
}

/**
 * What a tenant holds in these VMs: every VM not stopped counts against `vms` (a crashed one keeps
 * its disk until stopped); vCPUs and memory only while it may run (a crashed one holds neither).
 */
export function usageOf(vms: readonly Vm[], tenant: string): Usage {
	let usage = NO_USAGE;
	for (const vm of vms) {
		if ((vm.owner ?? null) !== tenant || vm.state === 'deleted') {
			continue;
		}

		// A stopped or crashed VM keeps its disk, so it counts as a VM, but holds no vCPU nor memory.
		const isHolding = vm.state !== 'crashed' && vm.state !== 'stopped';
		usage = addUsage(usage, {vms: 1, cpus: isHolding ? vm.cpus : 0, memoryMb: isHolding ? vm.memoryMb : 0});
	}

	return usage;
}

/**
 * What a tenant holds on the other hosts, from their lists: a VM this host holds (`isHere`; counted
 * by the local side) is left out, and a VM two hosts list (a live migration's handover) counts once.
 */
export function othersUsageOf(otherHostsVms: readonly Vm[], isHere: (vmId: string) => boolean, tenant: string): Usage {
	return usageOf(oneCopyPerVm(otherHostsVms).filter(vm => !isHere(vm.id)), tenant);
}

export function addUsage(a: Usage, b: Usage): Usage {
	return {vms: a.vms + b.vms, cpus: a.cpus + b.cpus, memoryMb: a.memoryMb + b.memoryMb};
}

/**
 * Why one more VM of `ask` would take `tenant` past its limits, or undefined when it fits. The
 * message names the limit: `tenant alice may run at most 4 VMs (has 4)`.
 */
export function quotaProblem(tenant: string, limits: QuotaLimits | undefined, usage: Usage, ask: {readonly cpus: number; readonly memoryMb: number}): string | undefined {
	if (!limits) {
		return undefined;
	}

	if (limits.vms !== undefined && usage.vms + 1 > limits.vms) {
		return `tenant ${tenant} may run at most ${limits.vms} VM${limits.vms === 1 ? '' : 's'} (has ${usage.vms})`;
	}

	if (limits.cpus !== undefined && usage.cpus + ask.cpus > limits.cpus) {
		return `tenant ${tenant} may use at most ${limits.cpus} vCPU${limits.cpus === 1 ? '' : 's'} (has ${usage.cpus}, asked for ${ask.cpus} more)`;
	}

	if (limits.memoryMb !== undefined && usage.memoryMb + ask.memoryMb > limits.memoryMb) {
		return `tenant ${tenant} may use at most ${limits.memoryMb} MB of guest memory (has ${usage.memoryMb}, asked for ${ask.memoryMb} more)`;
	}

	return undefined;
}
