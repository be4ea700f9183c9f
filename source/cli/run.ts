/**
 * `kloud-tui`'s commands once the command line is parsed: the TUI (Ink and React, loaded only
 * here, only for it) or one scriptable subcommand (zod and amqplib, loaded only when one runs).
 */
import {readFile, stat} from 'node:fs/promises';
// Static: the subcommands run as a vm.Script (code-cache.ts), where a dynamic import() has no loader.
import {createInterface} from 'node:readline/promises';
import type {KloudClient} from '../broker/client.js';
import {connectOperator} from '../operator.js';
import {bootCommand, consoleCommand, cordonCommand, deleteCommand, drainCommand, hostsCommand, imagesCommand, listCommand, migrateCommand, rebootCommand, startCommand, stopCommand, type Output} from '../commands.js';
import {
	checkNamespace,
	checkUserDataSize,
	hostIdSchema,
	imageNameSchema,
	MAX_CONSOLE_BYTES,
	MAX_SSH_KEYS,
	MAX_USER_DATA_BYTES,
	networkModeSchema,
	restartPolicySchema,
	sshKeySchema,
	vmIdSchema,
} from '../protocol/index.js';
import {UsageError, type CliArgs} from './args.js';
import {parseDiskSize} from './disk-size.js';
import {planGroupCommand, runGroupPlan} from './group.js';
import {agentUsers, tlsOptions} from './connect-flags.js';

/** `--until PATTERN`: a regular expression, or a usage error. */
function untilPattern(source: string): RegExp {
	try {
		return new RegExp(source);
	} catch (error) {
		throw new UsageError(`invalid --until ${JSON.stringify(source)}: ${(error as Error).message}`, {cause: error});
	}
}

function check<T>(schema: {safeParse(value: unknown): {success: true; data: T} | {success: false; error: {issues: Array<{message: string}>}}}, value: unknown): T {
	const parsed = schema.safeParse(value);
	if (!parsed.success) {
		throw new UsageError(parsed.error.issues[0]?.message ?? 'invalid value');
	}

	return parsed.data;
}

/** Reads `--user-data FILE`: UTF-8 text of at most 64 KiB, refused before anything is sent. */
async function readUserData(path: string): Promise<string> {
	const info = await stat(path).catch((error: unknown) => {
		throw new UsageError(`cannot read --user-data ${path}: ${(error as Error).message}`, {cause: error});
	});
	if (!info.isFile()) {
		throw new UsageError(`cannot read --user-data ${path}: not a file`);
	}

	if (info.size > MAX_USER_DATA_BYTES) {
		throw new UsageError(`--user-data ${path} is ${info.size} bytes, over the limit of ${MAX_USER_DATA_BYTES} bytes (64 KiB): keep it to a script that fetches the rest`);
	}

	const bytes = await readFile(path);
	let text: string;
	try {
		text = new TextDecoder('utf-8', {fatal: true}).decode(bytes);
	} catch (error) {
		throw new UsageError(`--user-data ${path} is not UTF-8 text`, {cause: error});
	}

	const sizeError = checkUserDataSize(text);
	if (sizeError) {
		throw new UsageError(`--user-data ${path}: ${sizeError}`);
	}

	return text;
}

/** Reads `--ssh-key FILE`s: one OpenSSH public key per line (as in `authorized_keys`), blank and `#` lines skipped. */
async function readSshKeys(paths: readonly string[]): Promise<string[]> {
	const keys: string[] = [];
	for (const path of paths) {
		const text = await readFile(path, 'utf8').catch((error: unknown) => {
			throw new UsageError(`cannot read --ssh-key ${path}: ${(error as Error).message}`, {cause: error});
		});
		const lines = text.split(/\r?\n/).map(line => line.trim()).filter(line => line !== '' && !line.startsWith('#'));
		if (lines.length === 0) {
			throw new UsageError(`--ssh-key ${path} holds no public key`);
		}

		for (const line of lines) {
			const parsed = sshKeySchema.safeParse(line);
			if (!parsed.success) {
				throw new UsageError(`--ssh-key ${path}: ${parsed.error.issues[0]?.message ?? 'not a public key'}${line.includes('PRIVATE KEY') ? ' (this is a private key: give the .pub file)' : ''}`);
			}

			keys.push(parsed.data);
		}
	}

	if (keys.length > MAX_SSH_KEYS) {
		throw new UsageError(`too many SSH keys: ${keys.length}, at most ${MAX_SSH_KEYS}`);
	}

	return keys;
}

function diskSizeMb(text: string): number {
	const size = parseDiskSize(text);
	if (!size.ok) {
		throw new UsageError(size.error);
	}

	return size.mb;
}

function positiveInteger(name: string, value: number | undefined): number | undefined {
	if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
		throw new UsageError(`invalid --${name} ${value}: must be a whole number ≥ 1`);
	}

	return value;
}

/** The terminal a subcommand may ask a question on (`delete` without --yes). */
export type CliTerminal = {
	readonly isInteractive: boolean;
	/** Writes a command's answer (stdout, and its warnings to stderr). */
	print(output: Output): void;
	/** Asks a yes/no question; true only for an explicit yes. */
	confirm(question: string): Promise<boolean>;
};

/** stdin and stderr, when both are a terminal: the question goes to stderr so stdout stays the answer. */
export function processTerminal(): CliTerminal {
	return {
		isInteractive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
		print(output) {
			process.stdout.write(`${output.stdout}\n`);
			if (output.stderr) {
				process.stderr.write(`${output.stderr}\n`);
			}
		},
		async confirm(question) {
			const prompt = createInterface({input: process.stdin, output: process.stderr});
			try {
				return /^y(es)?$/i.test((await prompt.question(`${question}. Delete? [y/N] `)).trim());
			} finally {
				prompt.close();
			}
		},
	};
}

/** Flags that only make sense for a new VM (`start --image`). */
const NEW_VM_FLAGS = ['image', 'memory', 'cpus', 'network', 'userData', 'restart', 'diskSize'] as const;

/** The VM id a lifecycle command acts on, or a usage error naming the command. */
function vmIdArgument(command: string, rest: readonly string[]): string {
	const [vmId, extra] = rest;
	if (!vmId) {
		throw new UsageError(`${command} needs a VM id, e.g. \`kloud-tui ${command} vm-abcdefgh\``);
	}

	if (extra !== undefined) {
		throw new UsageError(`${command} takes one VM id, got ${rest.length}`);
	}

	return check(vmIdSchema, vmId);
}

/**
 * Runs a subcommand (what to print). Bare `kloud-tui`, the TUI, is cli.ts's own (cli/run-tui.ts):
 * it runs from bundles of its own, never from this one's.
 */
export async function runCli({command, rest, flags}: CliArgs, terminal: CliTerminal = processTerminal()): Promise<void> {
	if (!command) {
		throw new UsageError('no subcommand: bare kloud-tui runs the TUI');
	}

	const namespaceError = checkNamespace(flags.namespace);
	if (namespaceError) {
		throw new UsageError(namespaceError);
	}

	if (flags.timeout !== undefined && !(flags.timeout > 0)) {
		throw new UsageError(`invalid --timeout ${flags.timeout}: must be a number of seconds > 0`);
	}

	if (flags.wait && command !== 'group') {
		throw new UsageError('--wait goes with group delete');
	}

	const seconds = (fallback: number) => (flags.timeout ?? fallback) * 1000;
	type Action = (client: KloudClient) => Promise<Output | undefined>;
	let action: Action;
	switch (command) {
		case 'list': {
			action = async client => listCommand(client, {json: flags.json, timeoutMs: seconds(2)});
			break;
		}

		case 'hosts': {
			action = async client => hostsCommand(client, {json: flags.json, timeoutMs: seconds(2)});
			break;
		}

		case 'images': {
			action = async client => imagesCommand(client, {json: flags.json, timeoutMs: seconds(2)});
			break;
		}

		case 'boot':
		case 'start': {
			if (command === 'boot' || rest.length > 0) {
				// `start VM_ID` (or `boot VM_ID`): the stopped VM runs again, as it was made.
				const given: string[] = [...NEW_VM_FLAGS.filter(name => flags[name] !== undefined), ...(flags.sshKey.length > 0 ? ['sshKey'] : [])];
				if (given.length > 0) {
					throw new UsageError(`${command} VM_ID boots a VM as it was made: --${given.map(name => name.replace(/[A-Z]/g, letter => `-${letter.toLowerCase()}`)).join(', --')} only go with start --image`);
				}

				const id = vmIdArgument(command, rest);
				const host = flags.host === undefined ? undefined : check(hostIdSchema, flags.host);
				action = async client => bootCommand(client, id, host === undefined ? {} : {host}, {json: flags.json, timeoutMs: seconds(30)});
				break;
			}

			if (!flags.image) {
				throw new UsageError('start needs --image NAME (see `kloud-tui images`)');
			}

			const body = {
				image: check(imageNameSchema, flags.image),
				...(flags.host === undefined ? {} : {host: check(hostIdSchema, flags.host)}),
				...(flags.memory === undefined ? {} : {memoryMb: positiveInteger('memory', flags.memory)}),
				...(flags.cpus === undefined ? {} : {cpus: positiveInteger('cpus', flags.cpus)}),
				...(flags.network === undefined ? {} : {network: check(networkModeSchema, flags.network)}),
				...(flags.userData === undefined ? {} : {userData: await readUserData(flags.userData)}),
				...(flags.sshKey === undefined || flags.sshKey.length === 0 ? {} : {sshKeys: await readSshKeys(flags.sshKey)}),
				...(flags.restart === undefined ? {} : {restart: check(restartPolicySchema, flags.restart)}),
				...(flags.diskSize === undefined ? {} : {diskMb: diskSizeMb(flags.diskSize)}),
			};
			action = async client => startCommand(client, body, {json: flags.json, timeoutMs: seconds(30)});
			break;
		}

		case 'stop': {
			const [vmId] = rest;
			if (!vmId) {
				throw new UsageError('stop needs a VM id, e.g. `kloud-tui stop vm-abcdefgh`');
			}

			if (flags.grace !== undefined && !(flags.grace >= 0)) {
				throw new UsageError(`invalid --grace ${flags.grace}: must be a number of seconds ≥ 0`);
			}

			const stop = {
				kill: flags.kill,
				...(flags.host === undefined ? {} : {host: check(hostIdSchema, flags.host)}),
				...(flags.grace === undefined ? {} : {graceSeconds: flags.grace}),
			};
			const id = check(vmIdSchema, vmId);
			action = async client => stopCommand(client, id, stop, {json: flags.json, timeoutMs: seconds(10)});
			break;
		}

		case 'reboot': {
			const id = vmIdArgument(command, rest);
			const host = flags.host === undefined ? undefined : check(hostIdSchema, flags.host);
			action = async client => rebootCommand(client, id, {hard: flags.hard, ...(host === undefined ? {} : {host})}, {json: flags.json, timeoutMs: seconds(10)});
			break;
		}

		case 'delete': {
			const id = vmIdArgument(command, rest);
			if (flags.grace !== undefined && !(flags.grace >= 0)) {
				throw new UsageError(`invalid --grace ${flags.grace}: must be a number of seconds ≥ 0`);
			}

			if (!flags.yes && !terminal.isInteractive) {
				throw new UsageError(`delete removes ${id}'s disk, user-data seed and IP for good: add --yes to delete without a terminal to confirm on`);
			}

			const remove = {
				...(flags.host === undefined ? {} : {host: check(hostIdSchema, flags.host)}),
				...(flags.grace === undefined ? {} : {graceSeconds: flags.grace}),
				...(flags.yes ? {} : {confirm: async (question: string) => terminal.confirm(question)}),
			};
			action = async client => deleteCommand(client, id, remove, {json: flags.json, timeoutMs: seconds(10)});
			break;
		}

		case 'console': {
			const [vmId] = rest;
			if (!vmId) {
				throw new UsageError('console needs a VM id, e.g. `kloud-tui console vm-abcdefgh`');
			}

			const id = check(vmIdSchema, vmId);
			if (flags.bytes !== undefined && (!Number.isInteger(flags.bytes) || flags.bytes < 1 || flags.bytes > MAX_CONSOLE_BYTES)) {
				throw new UsageError(`invalid --bytes ${flags.bytes}: must be a whole number from 1 to ${MAX_CONSOLE_BYTES}`);
			}

			const host = flags.host === undefined ? undefined : check(hostIdSchema, flags.host);
			if (flags.attach) {
				const until = flags.until === undefined ? undefined : untilPattern(flags.until);
				action = async client => {
					const {attachConsole} = await import('./console-attach.js');
					process.exitCode = await attachConsole(client, id, {
						write: !flags.readOnly,
						timeoutMs: seconds(5),
						...(until ? {until, untilTimeoutMs: seconds(30)} : {}),
						...(host === undefined ? {} : {host}),
					});
					return undefined;
				};
				break;
			}

			if (flags.until !== undefined || flags.readOnly) {
				throw new UsageError('--until and --read-only go with console --attach');
			}

			action = async client => consoleCommand(client, id, {json: flags.json, timeoutMs: seconds(5), bytes: flags.bytes, host});
			break;
		}

		case 'group': {
			const files = {
				...(flags.userData === undefined ? {} : {userData: await readUserData(flags.userData)}),
				...(flags.sshKey.length === 0 ? {} : {sshKeys: await readSshKeys(flags.sshKey)}),
			};
			const plan = planGroupCommand(rest, flags, files);
			const tls = tlsOptions(flags);
			// Waiting for a group's members to go takes the controller's next turn and their deletes.
			const timeoutMs = seconds(plan.kind === 'delete' && plan.wait ? 60 : 5);
			action = async client => runGroupPlan(plan, client, {url: flags.amqp, topo: client.topo, json: flags.json, timeoutMs, ...(tls ? {tls} : {})});
			break;
		}

		case 'migrate': {
			const [vmId] = rest;
			if (!vmId) {
				throw new UsageError('migrate needs a VM id, e.g. `kloud-tui migrate vm-abcdefgh --to host-b`');
			}

			const id = check(vmIdSchema, vmId);
			const migrate = {
				...(flags.host === undefined ? {} : {host: check(hostIdSchema, flags.host)}),
				...(flags.to === undefined ? {} : {to: check(hostIdSchema, flags.to)}),
			};
			action = async client => migrateCommand(client, id, migrate, {json: flags.json, timeoutMs: seconds(600)});
			break;
		}

		case 'cordon':
		case 'uncordon':
		case 'drain': {
			const [host] = rest;
			if (!host) {
				throw new UsageError(`${command} needs a host id, e.g. \`kloud-tui ${command} host-b\` (see \`kloud-tui hosts\`)`);
			}

			const id = check(hostIdSchema, host);
			action =
				command === 'drain'
					? async client => drainCommand(client, id, {json: flags.json, timeoutMs: seconds(600), onProgress: line => process.stderr.write(`${line}\n`)})
					: async client => cordonCommand(client, id, command === 'cordon', {json: flags.json, timeoutMs: seconds(10)});
			break;
		}

		default: {
			throw new UsageError(`unknown command "${command}" (try --help)`);
		}
	}

	const tls = tlsOptions(flags);
	const client = await connectOperator({url: flags.amqp, namespace: flags.namespace, failFast: true, agentUsers: agentUsers(flags), ...(tls ? {tls} : {})});
	try {
		const output = await action(client);
		// The answer is out before the connection's closing handshake (two round trips): the request
		// was answered, so nothing is left to lose; a failed close changes neither the answer nor the exit code.
		if (output) {
			terminal.print(output);
		}
	} finally {
		await client.close();
	}
}

