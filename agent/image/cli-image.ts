/** `kloud-agent image …`: the image subcommands (for now `build-demo`), kept out of the agent's own CLI. */
import {parseArgs} from 'node:util';
import {buildDemoImage} from './build-runner.js';

const USAGE = `Usage
  $ kloud-agent image build-demo --out DIR [--force]

Builds DIR/demo.qcow2, a tiny demo base image (Debian kernel + busybox, booted by
syslinux), from Debian packages fetched with apt-get download. Downloads are cached
in DIR/.cache; building again with nothing changed returns at once.

Options
  --out DIR   where demo.qcow2 goes, e.g. the agent's --images directory
  --force     rebuild even when the image is up to date
`;

/** Runs `kloud-agent image <argv…>`; resolves with the process exit code (0 ok, 1 failed, 2 usage). */
export async function runImageCommand(argv: string[]): Promise<number> {
	let parsed;
	try {
		parsed = parseArgs({
			args: argv,
			allowPositionals: true,
			options: {out: {type: 'string'}, force: {type: 'boolean', default: false}, help: {type: 'boolean', short: 'h', default: false}},
		});
	} catch (error) {
		return usage((error as Error).message);
	}

	const {values, positionals} = parsed;
	if (values.help) {
		process.stdout.write(USAGE);
		return 0;
	}

	const [command, ...extra] = positionals;
	if (command !== 'build-demo') {
		return usage(command === undefined ? 'missing subcommand' : `unknown subcommand "${command}"`);
	}

	if (extra.length > 0) {
		return usage(`unexpected argument "${extra[0]}"`);
	}

	if (values.out === undefined || values.out === '') {
		return usage('--out DIR is required');
	}

	const started = performance.now();
	try {
		const result = await buildDemoImage({
			outDir: values.out,
			force: values.force,
			onProgress: line => process.stderr.write(`kloud-agent image: ${line}\n`),
		});
		const seconds = ((performance.now() - started) / 1000).toFixed(1);
		const size = (result.sizeBytes / (1024 * 1024)).toFixed(1);
		process.stdout.write(`${result.path} ${size} MiB ${result.cached ? 'up to date' : `built in ${seconds} s`}\n`);
		return 0;
	} catch (error) {
		// MissingPackagesError's message names the packages and the apt-get line that installs them.
		process.stderr.write(`kloud-agent image: ${(error as Error).message}\n`);
		return 1;
	}
}

function usage(problem: string): number {
	process.stderr.write(`kloud-agent image: ${problem}\n\n${USAGE}`);
	return 2;
}
