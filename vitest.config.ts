import {defineConfig} from 'vitest/config';

export default defineConfig({
	test: {
		include: ['test/**/*.test.{ts,tsx}'],
		// The broker-restart test stops the broker: it runs alone, in its own pass (vitest.restart.config.ts);
		// the 3-node cluster test runs in a pass of its own after this one (vitest.cluster.config.ts).
		exclude: ['test/restart/**', 'test/e2e/cluster.test.ts', '**/node_modules/**'],
		testTimeout: 60_000,
		hookTimeout: 60_000,
		// e2e files each boot agents and QEMU; two cores, so keep file parallelism modest
		maxWorkers: 2,
		minWorkers: 1,
		reporters: ['default'],
	},
});
