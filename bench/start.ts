/** Start latency (request → reply with QMP answering) and 100 concurrent starts, against direct QEMU starts. */
import {join} from 'node:path';
import {createRuntime} from '../agent/runtime.js';
import type {BenchCloud} from './lib/cloud.js';
import {rssMb} from './lib/agents.js';
import {directStart, directStarts, killDirect} from './lib/floor.js';

export type StartResult = {readonly floor: number[]; readonly kloud: number[]};

/** Sequential starts on one named host, each killed before the next, against the same done directly. */
export async function measureStart(cloud: BenchCloud, count: number): Promise<StartResult> {
	const runtime = createRuntime();
	const floor: number[] = [];
	const kloud: number[] = [];
	const [agent] = cloud.agents;
	for (let index = 0; index < count; index++) {
		const direct = await directStart(runtime, join(cloud.dir, 'floor'), cloud.base, {isPaused: true});
		floor.push(direct.ms);
		await killDirect([direct.vm]);

		const started = performance.now();
		const vm = await cloud.client.start({image: 'blank', host: agent!.hostId}, {timeoutMs: 60_000});
		kloud.push(performance.now() - started);
		await cloud.client.delete(vm.id, {host: vm.host, timeoutMs: 30_000});
	}

	return {floor, kloud};
}

export type ConcurrentResult = {
	readonly floorMs: number;
	readonly kloudMs: number;
	readonly requested: number;
	readonly distinctVms: number;
	readonly listed: number;
	readonly perAgent: Record<string, number>;
};

/** `count` starts at once through the shared work queue, spread over the cloud's agents. */
export async function measureConcurrentStarts(cloud: BenchCloud, count: number): Promise<ConcurrentResult> {
	const floor = await directStarts(cloud.dir, cloud.base, count, cloud.agents.length);
	await killDirect(floor.vms);

	const started = performance.now();
	const vms = await Promise.all(Array.from({length: count}, async () => cloud.client.start({image: 'blank'}, {timeoutMs: 300_000})));
	const kloudMs = performance.now() - started;
	const round = await cloud.client.list({timeoutMs: 5000});
	const listed = round.replies.flatMap(reply => reply.vms).filter(vm => vm.state === 'running');
	const perAgent: Record<string, number> = {};
	for (const vm of vms) {
		perAgent[vm.host] = (perAgent[vm.host] ?? 0) + 1;
	}

	return {floorMs: floor.totalMs, kloudMs, requested: count, distinctVms: new Set(vms.map(vm => vm.id)).size, listed: listed.length, perAgent};
}

export type GrowthResult = {
	/** Start latency by how many VMs the host already ran. */
	readonly startByVms: Array<{readonly vmsBefore: number; readonly ms: number}>;
	/** List round latency with that many VMs on the host. */
	readonly listByVms: Array<{readonly vms: number; readonly ms: number}>;
	readonly idleRssMb: number;
	readonly loadedRssMb: number;
	readonly loadedVms: number;
};

/** One agent grows to `total` VMs: start and list latency along the way, agent RSS idle and loaded. */
export async function measureGrowth(cloud: BenchCloud, total: number): Promise<GrowthResult> {
	const [agent] = cloud.agents;
	await new Promise(resolve => setTimeout(resolve, 2000));
	const idleRssMb = await rssMb(agent!.process.pid!);
	const startByVms: GrowthResult['startByVms'] = [];
	const listByVms: GrowthResult['listByVms'] = [];
	for (let index = 0; index < total; index++) {
		const started = performance.now();
		await cloud.client.start({image: 'blank', host: agent!.hostId}, {timeoutMs: 60_000});
		startByVms.push({vmsBefore: index, ms: performance.now() - started});
		if ((index + 1) % 10 === 0) {
			const samples: number[] = [];
			for (let round = 0; round < 30; round++) {
				const roundStarted = performance.now();
				await cloud.client.list({timeoutMs: 2000});
				samples.push(performance.now() - roundStarted);
			}

			samples.sort((a, b) => a - b);
			listByVms.push({vms: index + 1, ms: samples[Math.floor(samples.length / 2)]!});
		}
	}

	await new Promise(resolve => setTimeout(resolve, 2000));
	return {startByVms, listByVms, idleRssMb, loadedRssMb: await rssMb(agent!.process.pid!), loadedVms: total};
}
