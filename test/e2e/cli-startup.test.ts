/**
 * What `kloud-tui` loads before it does anything: a subcommand must not pay for the TUI. Checked on
 * the module graph, not the clock: the process runs under loader hooks that record every module it
 * loads, and the bundle's metafile says which sources each chunk of dist/bin holds. Subcommands run
 * against a real agent on the real broker.
 */
import {execFile} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {chmod, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {CLI_BIN, createCloud, type Cloud} from '../helpers/cloud.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RECORDER = join(ROOT, 'test/fixtures/record-modules.mjs');

type Metafile = {readonly outputs: Readonly<Record<string, {readonly inputs: Readonly<Record<string, unknown>>}>>};
const meta = JSON.parse(readFileSync(join(ROOT, 'dist/bin/meta.json'), 'utf8')) as Metafile;

let cloud: Cloud;
let dir: string;

beforeAll(async () => {
	cloud = await createCloud('startup');
	await cloud.startAgent('startup-a', ['--start-paused']);
	dir = await mkdtemp('/tmp/kl-modules-');
});

afterAll(async () => {
	await cloud?.cleanup();
	await rm(dir, {recursive: true, force: true});
});

/** The packages (`ink`, `zod`, …, and `kloud` for our own sources) whose code a run of `script args` loaded. */
async function loadedPackages(
	script: string,
	args: readonly string[],
	env: NodeJS.ProcessEnv = {},
): Promise<{readonly packages: Set<string>; readonly files: readonly string[]; readonly code: number; readonly stdout: string}> {
	const log = join(dir, `${Math.random().toString(36).slice(2)}.log`);
	const {code, stdout} = await new Promise<{code: number; stdout: string}>(resolve => {
		execFile(process.execPath, ['--import', RECORDER, script, ...args], {env: {...process.env, ...env, KLOUD_MODULE_LOG: log}}, (error, stdout_) => {
			resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: stdout_});
		});
	});
	const urls = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
	const packages = new Set<string>();
	const files = urls.filter(url => url.startsWith('file:')).map(url => fileURLToPath(url));
	for (const path of files) {
		// A chunk of the bundle stands for the sources in it; anything else stands for itself.
		const inputs = Object.keys(meta.outputs[path.slice(ROOT.length)]?.inputs ?? {[path]: true});
		for (const input of inputs) {
			packages.add(/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1] ?? 'kloud');
		}
	}

	return {packages, files, code, stdout};
}

const TUI_PACKAGES = ['ink', 'react', 'react-reconciler', 'yoga-layout'];

describe('finding a VM\'s owner', () => {
	it('stop without --host ends at the owner\'s answer, not waiting for a silent host', {timeout: 30_000}, async () => {
		// A live host that does not answer (stopped, with a 30 s heartbeat: it stays in every roster for 90 s).
		const silent = await cloud.startAgent('startup-silent', ['--heartbeat', '30']);
		try {
			const vm = (await cloud.cliJson(['start', '--image', 'blank', '--host', 'startup-a'])) as {id: string};
			silent.process.kill('SIGSTOP');
			const round = (await cloud.cliJson(['list', '--timeout', '2'])) as {vms: Array<{id: string}>; hosts: Array<{id: string; answered: boolean}>};
			expect(round.hosts.find(host => host.id === 'startup-silent')?.answered).toBe(false);
			expect(round.vms.map(listed => listed.id)).toContain(vm.id);
			// A full list round would wait the whole --timeout (120 s) for the silent host: this test allows 30 s in all.
			const stopped = (await cloud.cliJson(['stop', vm.id, '--kill', '--timeout', '120'])) as {id: string; host: string; state: string};
			expect(stopped).toMatchObject({id: vm.id, host: 'startup-a', state: 'stopped'});
		} finally {
			silent.process.kill('SIGCONT');
			await silent.stop();
		}
	});
});

describe('kloud-tui start-up', () => {
	it('--help and `list --help` load neither the TUI nor zod nor amqplib', async () => {
		for (const args of [['--help'], ['list', '--help']]) {
			const {packages, code, stdout} = await loadedPackages(CLI_BIN, args);
			expect(code).toBe(0);
			expect(stdout).toContain('kloud-tui list');
			expect([...packages].sort()).toEqual(['kloud']);
		}
	});

	it.each([
		[['list']],
		[['hosts', '--json']],
		[['stop', 'vm-abcdefgh', '--host', 'startup-a']],
		[['start', '--image', 'no-such-image', '--host', 'startup-a', '--timeout', '5']],
	])('`kloud-tui %s` talks to the broker without loading Ink or React', async args => {
		const {packages, code} = await loadedPackages(CLI_BIN, [...args, '--amqp', cloud.amqpUrl, '--namespace', cloud.namespace]);
		// list and hosts succeed; the stop and start are answered (unknown VM, unknown image): all of them reached the agent
		expect(code).toBe(args[0] === 'list' || args[0] === 'hosts' ? 0 : 1);
		expect(packages.has('amqplib')).toBe(true);
		expect(packages.has('zod')).toBe(true);
		expect(TUI_PACKAGES.filter(name => packages.has(name))).toEqual([]);
	});

	it('the bundles run through vm.Script hold no dynamic import() (there it throws: \'A dynamic import callback was not specified\')', async () => {
		for (const name of ['subcommands.cjs', 'tui.cjs', 'tui-broker.cjs']) {
			const bundle = await readFile(join(ROOT, 'dist/bin', name), 'utf8');
			expect([...bundle.matchAll(/\bimport\((["'][^"']+["'])\)/g)].map(match => match[1]), name).toEqual([]);
		}
	});

	it('the TUI\'s first frame needs neither zod nor amqplib, nor React\'s development build: they are not in its bundle', () => {
		const packagesOf = (output: string) => new Set(Object.keys(meta.outputs[output]!.inputs).map(input => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1] ?? 'kloud'));
		const tui = packagesOf('dist/bin/tui.cjs');
		expect(TUI_PACKAGES.filter(name => tui.has(name))).toEqual(TUI_PACKAGES);
		expect(['zod', 'amqplib'].filter(name => tui.has(name))).toEqual([]);
		expect(Object.keys(meta.outputs['dist/bin/tui.cjs']!.inputs).filter(input => input.includes('.development.'))).toEqual([]);
		// What the TUI loads once its first frame is out.
		const broker = packagesOf('dist/bin/tui-broker.cjs');
		expect(['zod', 'amqplib'].filter(name => broker.has(name))).toEqual(['zod', 'amqplib']);
		expect(TUI_PACKAGES.filter(name => broker.has(name))).toEqual([]);
	});

	it('the recorder sees the TUI where it is loaded (the checks above can fail)', async () => {
		const script = join(dir, 'require-tui.cjs');
		await writeFile(script, `require(${JSON.stringify(join(ROOT, 'dist/bin/tui.cjs'))});\n`);
		const {packages} = await loadedPackages(script, []);
		expect(TUI_PACKAGES.filter(name => packages.has(name))).toEqual(TUI_PACKAGES);
	});
});

describe('the subcommands\' code cache', () => {
	const cacheFiles = async (cacheDir: string) => (await readdir(cacheDir).catch(() => [] as string[])).filter(name => name.endsWith('.v8'));

	it('is made by the first run, used by the next, and a corrupt, truncated or foreign one never breaks the CLI', {timeout: 60_000}, async () => {
		const cacheDir = join(dir, 'cache');
		const list = async () => {
			const run = await loadedPackages(CLI_BIN, ['list', '--json', '--amqp', cloud.amqpUrl, '--namespace', cloud.namespace], {KLOUD_CACHE_DIR: cacheDir});
			expect(run.code).toBe(0);
			expect((JSON.parse(run.stdout) as {hosts: Array<{id: string}>}).hosts.map(host => host.id)).toContain('startup-a');
			// The subcommand ran from the CommonJS bundle, not from the ES module chunks.
			expect(run.files.some(file => file.endsWith('/dist/bin/subcommands.cjs'))).toBe(true);
			return run;
		};

		await list();
		const [name, ...others] = await cacheFiles(cacheDir);
		expect(others).toEqual([]);
		const path = join(cacheDir, name!);
		const sound = await readFile(path);
		await list();
		// Used, not rewritten: a run rewrites only a cache it could not use.
		expect((await readFile(path)).equals(sound)).toBe(true);

		const middle = Math.floor(sound.length / 2);
		const flipped = Buffer.from(sound);
		flipped.fill(0xff, middle, middle + 64);
		const foreign = Buffer.from(sound);
		// The header's checksum of the source the cache was made from (right after the 16-byte magic).
		foreign[20] = (foreign[20]! + 1) % 256;
		for (const [what, bad] of [
			['64 bytes overwritten in the payload (V8 itself would crash or run it)', flipped],
			['cut in half', sound.subarray(0, middle)],
			['made from another source', foreign],
			['not a cache at all', Buffer.from('garbage')],
		] as const) {
			await writeFile(path, bad);
			await list();
			const replaced = await readFile(path);
			expect(replaced.equals(bad), what).toBe(false);
			await list();
			expect((await readFile(path)).equals(replaced), `${what}: the replacement is used`).toBe(true);
		}
	});

	it('a cache file others may write is not run but replaced (V8 runs a cache\'s bytecode as it finds it)', async () => {
		const cacheDir = join(dir, 'cache-shared');
		const hosts = async () => {
			const run = await loadedPackages(CLI_BIN, ['hosts', '--json', '--amqp', cloud.amqpUrl, '--namespace', cloud.namespace], {KLOUD_CACHE_DIR: cacheDir});
			expect(run.code).toBe(0);
		};

		await hosts();
		const [name] = await cacheFiles(cacheDir);
		const path = join(cacheDir, name!);
		expect((await stat(path)).mode & 0o022).toBe(0);
		await chmod(path, 0o666);
		await hosts();
		expect((await stat(path)).mode & 0o022).toBe(0);
	});

	it('a cache directory that cannot be written leaves the CLI working', async () => {
		for (const cacheDir of ['/proc/kloud/cache', '/etc/hostname/kloud', '']) {
			const run = await loadedPackages(CLI_BIN, ['hosts', '--json', '--amqp', cloud.amqpUrl, '--namespace', cloud.namespace], {KLOUD_CACHE_DIR: cacheDir});
			expect(run.code).toBe(0);
			expect((JSON.parse(run.stdout) as Array<{id: string}>).map(host => host.id)).toContain('startup-a');
		}
	});
});
