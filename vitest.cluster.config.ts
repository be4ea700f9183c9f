import {defineConfig} from 'vitest/config';

/**
 * The 3-node cluster test alone, after the main suite: three RabbitMQ nodes on one 2-core machine
 * with QEMU and a dozen agents beside them starve each other's Erlang distribution ticks (the test
 * nodes run with net_ticktime 10 and pause_minority, to see a hung node quickly), and a node that
 * misses its ticks pauses itself: what the test would then measure is the machine, not kloud.
 */
export default defineConfig({
	test: {
		include: ['test/e2e/cluster.test.ts'],
		testTimeout: 60_000,
		hookTimeout: 60_000,
		fileParallelism: false,
	},
});
