import {defineConfig} from 'vitest/config';

/** The broker-restart test alone: it stops the broker, so nothing else may run beside it. */
export default defineConfig({
	test: {
		include: ['test/restart/**/*.test.ts'],
		testTimeout: 120_000,
		hookTimeout: 60_000,
		fileParallelism: false,
	},
});
