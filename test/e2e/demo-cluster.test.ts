/**
 * `npm run demo -- --check --cluster`: the demo on a 3-node RabbitMQ cluster the script starts
 * itself (scripts/cluster.sh, a name and ports of this test's own). Agents report which node they
 * are on; the node host-a is on is stopped and host-a moves; the demo VM boots, is listed and powered
 * off; afterwards nothing is left: no node, no node name in epmd, no cluster dir, no agent.
 */
import {execFile, spawn} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {pidsMentioning, removeDemoLeftovers} from '../helpers/cloud.js';
import {demoImage} from '../helpers/demo-image.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const namespace = `test-democl-${randomBytes(3).toString('hex')}`;
const CLUSTER = {KLOUD_CLUSTER_DIR: '/tmp/kloud-cluster-kdc', KLOUD_CLUSTER_NAME: 'kdc', KLOUD_CLUSTER_PORT: '5781'};
const TIMEOUT_MS = 200_000;
let imagePath = '';
let workDir: string | undefined;

beforeAll(async () => {
	imagePath = (await demoImage()).path;
}, 300_000);

afterAll(async () => {
	await removeDemoLeftovers(namespace, workDir);
	// Whatever a failed run left of the cluster.
	await run('bash', ['scripts/cluster.sh', 'down'], {cwd: ROOT, env: {...process.env, ...CLUSTER}}).catch(() => {});
}, 60_000);

describe('npm run demo -- --check --cluster', () => {
	it('runs the demo on a cluster of its own, moves host-a off a stopped node, and takes the cluster down', async () => {
		const child = spawn('bash', ['scripts/demo.sh', '--check', '--cluster'], {
			cwd: ROOT,
			stdio: ['ignore', 'pipe', 'pipe'],
			env: {...process.env, ...CLUSTER, KLOUD_NAMESPACE: namespace, KLOUD_DEMO_IMAGE: imagePath, NO_COLOR: '1'},
		});
		let output = '';
		child.stdout.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		child.stderr.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		const started = performance.now();
		const timer = setTimeout(() => child.kill('SIGTERM'), TIMEOUT_MS);
		const code = await new Promise<number | null>(resolve => child.once('exit', exitCode => resolve(exitCode)));
		clearTimeout(timer);
		console.info(`[demo --check --cluster] exit ${code} after ${Math.round(performance.now() - started)} ms`);
		workDir = /state and logs in (\/tmp\/kloud-demo\.\w+)/.exec(output)?.[1];

		expect(code, output).toBe(0);
		expect(output).toMatch(/HOST\s+STATUS\s+VMS\s+FREE MEM\s+ACCEL\s+IMAGES\s+BROKER/);
		expect(output).toMatch(/^host-a\s+up.*127\.0\.0\.1:578[123]$/m);
		expect(output).toMatch(/host-a moved to 127\.0\.0\.1:578[123] within \d+ s/);
		expect(output).toContain('check passed');
		expect(output).toContain('stopping the RabbitMQ cluster (the demo started it)');

		expect(existsSync(CLUSTER.KLOUD_CLUSTER_DIR)).toBe(false);
		expect((await run('epmd', ['-names'])).stdout).not.toMatch(/^name kdc\d /m);
		expect(await pidsMentioning(`${CLUSTER.KLOUD_CLUSTER_DIR}/`)).toEqual([]);
		expect(await pidsMentioning(`--namespace ${namespace}`)).toEqual([]);
	}, TIMEOUT_MS + 30_000);
});
