import {describe, expect, it} from 'vitest';
import {ByteBudget} from '../source/broker/byte-budget.js';
import {FairLanes} from '../source/broker/fair-lanes.js';

/** A task that runs until its `finish` is called. */
function gate(): {readonly task: () => Promise<void>; readonly started: () => boolean; finish(): void} {
	let isStarted = false;
	let finish = () => {};
	const done = new Promise<void>(resolve => {
		finish = resolve;
	});
	return {
		task: async () => {
			isStarted = true;
			await done;
		},
		started: () => isStarted,
		finish: () => finish(),
	};
}

const tick = async () => new Promise(resolve => setImmediate(resolve));

describe('FairLanes', () => {
	it('runs up to `running` per sender, holds up to `held`, refuses the rest; other senders are not held up', async () => {
		const lanes = new FairLanes({running: 2, held: 3});
		const tasks = Array.from({length: 5}, () => gate());
		expect(tasks.map(task => lanes.submit('alice', task.task))).toEqual([true, true, true, false, false]);
		expect(tasks.map(task => task.started())).toEqual([true, true, false, false, false]);
		expect(lanes.held('alice')).toBe(3);

		// Bob's request starts at once, whatever alice holds.
		const bob = gate();
		expect(lanes.submit('bob', bob.task)).toBe(true);
		expect(bob.started()).toBe(true);

		// One of alice's ends: her waiting one starts, and she has room for one more.
		tasks[0]!.finish();
		await tick();
		expect(tasks[2]!.started()).toBe(true);
		expect(lanes.held('alice')).toBe(2);
		for (const task of [...tasks, bob]) {
			task.finish();
		}

		await tick();
		await tick();
		expect(lanes.held('alice')).toBe(0);
		expect(lanes.held('bob')).toBe(0);
	});

	it('frees the slot of a task that fails', async () => {
		const lanes = new FairLanes({running: 1, held: 1});
		expect(lanes.submit('a', async () => Promise.reject(new Error('boom')))).toBe(true);
		await tick();
		await tick();
		expect(lanes.held('a')).toBe(0);
		expect(lanes.submit('a', async () => {})).toBe(true);
	});
});

describe('ByteBudget', () => {
	it('lets requests in while they fit, in order; a request larger than the limit runs alone', async () => {
		const budget = new ByteBudget(100);
		const granted: string[] = [];
		const take = (name: string, bytes: number) => budget.acquire(bytes).then(release => {
			granted.push(name);
			return release;
		});
		const a = take('a', 60);
		const b = take('b', 60);
		const c = take('c', 10);
		await tick();
		// b does not fit beside a; c waits behind b (first come, first served).
		expect(granted).toEqual(['a']);
		(await a)();
		await tick();
		expect(granted).toEqual(['a', 'b', 'c']);
		(await b)();
		(await c)();
		expect(budget.used).toBe(0);
		const huge = await budget.acquire(500);
		expect(budget.used).toBe(500);
		huge();
		huge();
		expect(budget.used).toBe(0);
	});
});
