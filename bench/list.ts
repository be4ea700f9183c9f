/** List rounds across N agents (each with a few paused VMs) against plain amqplib rounds to N responders. */
import {encode, okReply} from '../source/protocol/index.js';
import type {BenchCloud} from './lib/cloud.js';
import {openListFloor} from './lib/floor.js';
import {median, p90} from './lib/stats.js';

export type ListPoint = {
	readonly hosts: number;
	readonly vms: number;
	readonly floor: number[];
	readonly kloud: number[];
	/** Rounds that ended before every host answered (should be 0). */
	readonly incomplete: number;
};

const VMS_PER_AGENT = 3;

/** Grows the cloud to `hosts` agents with VMS_PER_AGENT paused VMs each, then times both kinds of round. */
export async function measureList(cloud: BenchCloud, hosts: number, rounds: number): Promise<ListPoint> {
	const added = await cloud.addAgents(hosts - cloud.agents.length);
	for (const agent of added) {
		await Promise.all(Array.from({length: VMS_PER_AGENT}, async () => cloud.client.start({image: 'blank', host: agent.hostId}, {timeoutMs: 60_000})));
	}

	await cloud.settle();
	const sample = await cloud.client.list({timeoutMs: 5000});
	const first = sample.replies[0]!;
	// The floor's responders answer with a reply of the same size as a real agent's.
	const payload = Buffer.from(encode(okReply('x', first, {id: 'x', from: first.host.id, ts: Date.now()})));
	// Floor and kloud rounds alternate, so drift on this shared machine weighs on both alike.
	const floorRounds = await openListFloor(hosts, payload);
	const floor: number[] = [];
	const kloud: number[] = [];
	let incomplete = 0;
	try {
		for (let round = 0; round < rounds; round++) {
			floor.push(await floorRounds.round());
			const started = performance.now();
			const result = await cloud.client.list({timeoutMs: 2000});
			kloud.push(performance.now() - started);
			if (result.replies.length !== hosts) {
				incomplete++;
			}
		}
	} finally {
		await floorRounds.close();
	}

	return {hosts, vms: sample.replies.reduce((sum, reply) => sum + reply.vms.length, 0), floor, kloud, incomplete};
}

export function describeList(point: ListPoint): {measure: string; floorMedian: number; median: number; p90: number} {
	return {
		measure: `list round, ${point.hosts} agent${point.hosts === 1 ? '' : 's'} (${point.vms} VMs)`,
		floorMedian: median(point.floor),
		median: median(point.kloud),
		p90: p90(point.kloud),
	};
}
