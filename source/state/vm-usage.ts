/**
 * A VM's live use (CPU, resident memory) as its agent measures it, where the list replies carry
 * it (`Vm.load`, from agents with load metrics); undefined fields where they do not (older
 * agents, a VM not running, or not sampled twice yet). The one place that reads the metric fields.
 */
import type {Vm} from '../protocol/index.js';

export type VmUsage = {
	/** CPU in % of one host core (a VM with 2 busy vCPUs: 200), as `top` counts it. */
	readonly cpuPercent?: number;
	readonly rssMb?: number;
};

function finite(value: unknown): number | undefined {
	return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

export function vmUsage(vm: Vm): VmUsage {
	// `Vm.load`: CPU as a share of the VM's vCPUs (100: all busy), RSS in bytes; agents before load metrics leave it out.
	const cpu = finite(vm.load?.cpuPercent);
	const rss = finite(vm.load?.rssBytes);
	return {...(cpu === undefined ? {} : {cpuPercent: cpu * vm.cpus}), ...(rss === undefined ? {} : {rssMb: Math.round(rss / (1024 * 1024))})};
}
