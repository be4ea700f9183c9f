import {defineConfig} from 'vitest/config';

/**
 * The 3-node cluster test, in a pass of its own after the main suite (`npm test`; alone:
 * `npm run test:cluster`): it stops, freezes and restarts its own RabbitMQ nodes for minutes, and
 * its failover times are figures the README quotes, best not measured beside a dozen other e2e files.
 */
export default defineConfig({
	test: {
		include: ['test/e2e/cluster.test.ts'],
		testTimeout: 60_000,
		hookTimeout: 60_000,
		fileParallelism: false,
	},
});
