/** The CLI's failures a script must be able to rely on: one line on stderr, a non-zero exit. */
import {execFile} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {describe, expect, it} from 'vitest';
import {AMQP_URL, CLI_BIN, deleteNamespace} from '../helpers/cloud.js';

async function cli(args: readonly string[]): Promise<{code: number; stdout: string; stderr: string; ms: number}> {
	const started = performance.now();
	return new Promise(resolve => {
		execFile(process.execPath, [CLI_BIN, ...args], (error, stdout, stderr) => {
			resolve({code: error ? Number(error.code ?? 1) : 0, stdout, stderr, ms: performance.now() - started});
		});
	});
}

describe('kloud-tui errors', () => {
	it('says the broker is unreachable, without a stack trace', async () => {
		const result = await cli(['list', '--amqp', 'amqp://guest:guest@127.0.0.1:1']);
		expect(result.code).toBe(1);
		expect(result.stderr.trim()).toBe('kloud-tui: cannot reach the broker at amqp://guest:***@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1');
	});

	it('says no host answered when a namespace has no agents, after the timeout', async () => {
		const namespace = `test-empty-${randomBytes(3).toString('hex')}`;
		try {
			const result = await cli(['list', '--amqp', AMQP_URL, '--namespace', namespace, '--timeout', '0.5']);
			expect(result.code).toBe(1);
			expect(result.stderr.trim()).toBe('kloud-tui: no host answered within 0.5 s');
			const start = await cli(['start', '--image', 'blank', '--amqp', AMQP_URL, '--namespace', namespace, '--timeout', '0.5']);
			expect(start.code).toBe(1);
			expect(start.stderr.trim()).toBe('kloud-tui: no reply to vm.start from any host within 0.5 s');
		} finally {
			await deleteNamespace(namespace);
		}
	});

	it.each([
		[['start'], 'kloud-tui: start needs --image NAME (see `kloud-tui images`)'],
		[['stop', 'not-a-vm'], 'kloud-tui: invalid VM id "not-a-vm": expected "vm-" and 8 lowercase letters'],
		[['start', '--image', 'x', '--cpus', '0'], 'kloud-tui: invalid --cpus 0: must be a whole number ≥ 1'],
		[['resize'], 'kloud-tui: unknown command "resize" (try --help)'],
		[['reboot'], 'kloud-tui: reboot needs a VM id, e.g. `kloud-tui reboot vm-abcdefgh`'],
		[['boot', 'vm-abcdefgh', 'vm-bcdefghi'], 'kloud-tui: boot takes one VM id, got 2'],
		[['start', 'vm-abcdefgh', '--image', 'demo', '--memory', '64'], 'kloud-tui: start VM_ID boots a VM as it was made: --image, --memory only go with start --image'],
		[['start', '--image', 'demo', '--disk-size', '10'], 'kloud-tui: invalid --disk-size "10" (give a unit): expected a size like 512M, 10G or 1T'],
		[['start', '--image', 'demo', '--restart', 'sometimes'], 'kloud-tui: invalid restart policy "sometimes": expected one of no, on-failure, always'],
		[['delete', 'vm-abcdefgh'], "kloud-tui: delete removes vm-abcdefgh's disk, user-data seed and IP for good: add --yes to delete without a terminal to confirm on"],
		[['delete', 'vm-abcdefgh', '--yes', '--grace=-1'], 'kloud-tui: invalid --grace -1: must be a number of seconds ≥ 0'],
	])('refuses bad usage %j with exit 2 before touching the broker', async (args, message) => {
		const result = await cli([...args, '--amqp', 'amqp://guest:guest@127.0.0.1:1']);
		expect(result.code).toBe(2);
		expect(result.stderr.trim()).toBe(message);
	});
});
