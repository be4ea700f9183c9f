/**
 * One host's capacity, as a pure decision: may one more VM start here, counted against
 * `--max-vms`, the guest memory budget and the vCPU budget (`--cpu-overcommit` × host cores)?
 */

/** vCPUs handed out per host core when `--cpu-overcommit` is not given (OpenStack's long-time default). */
export const DEFAULT_CPU_OVERCOMMIT = 16;

export type HostLoad = {
	readonly hostId: string;
	/** VMs held (crashed ones too: they keep their disk) plus starts under way. */
	readonly vms: number;
	readonly maxVms: number;
	/** Guest memory and vCPUs promised: VMs that may run plus starts under way. */
	readonly memoryMb: number;
	readonly memoryBudgetMb: number;
	readonly cpus: number;
	readonly cpuBudget: number;
};

/** The vCPU budget: `overcommit` × cores, at least one vCPU. */
export function cpuBudget(cores: number, overcommit: number): number {
	return Math.max(1, Math.floor(cores * overcommit));
}

/** Why one more VM of `ask` does not fit this host, or undefined when it does. */
export function capacityProblem(load: HostLoad, ask: {readonly memoryMb: number; readonly cpus: number}): string | undefined {
	const host = `host ${load.hostId}`;
	if (ask.cpus > load.cpuBudget) {
		return `${host} hands out at most ${load.cpuBudget} vCPUs in all: a VM with ${ask.cpus} never fits`;
	}

	if (load.vms >= load.maxVms) {
		return `${host} is full (${load.vms} of ${load.maxVms} VMs)`;
	}

	if (load.memoryMb + ask.memoryMb > load.memoryBudgetMb) {
		return `${host} has ${Math.max(0, load.memoryBudgetMb - load.memoryMb)} of its ${load.memoryBudgetMb} MB memory budget free, not the ${ask.memoryMb} MB asked for`;
	}

	if (load.cpus + ask.cpus > load.cpuBudget) {
		return `${host} has ${Math.max(0, load.cpuBudget - load.cpus)} of its ${load.cpuBudget} vCPUs free, not the ${ask.cpus} asked for`;
	}

	return undefined;
}
