/**
 * `kloud-tui`'s command line, parsed with Node's own `util.parseArgs`: no library to load, so a
 * subcommand starts as fast as Node does (meow alone costs ≈ 70 ms to import here, `node -e 0`
 * ≈ 90 ms). Pure: argv and environment in, flags out, or a `UsageError` saying what is wrong.
 */
import {parseArgs} from 'node:util';
import {DEFAULT_AMQP_URL} from './usage.js';

/** Bad usage: printed as one line, exit status 2, before anything touches the broker. */
export class UsageError extends Error {
	override name = 'UsageError';
}

export type CliFlags = {
	readonly amqp: string;
	readonly namespace: string;
	readonly timeout?: number;
	readonly json: boolean;
	readonly image?: string;
	readonly host?: string;
	/** `migrate --to HOST`. */
	readonly to?: string;
	readonly memory?: number;
	readonly cpus?: number;
	readonly network?: string;
	readonly userData?: string;
	readonly sshKey: readonly string[];
	readonly kill: boolean;
	readonly grace?: number;
	/** `start --restart no|on-failure|always`, and `group create` for its members (checked by the command). */
	readonly restart?: string;
	/** `start --disk-size 10G` as typed (parsed by the command). */
	readonly diskSize?: string;
	/** `reboot --hard`: a hardware reset instead of an ACPI reboot. */
	readonly hard: boolean;
	/** `delete --yes`: no question asked. */
	readonly yes: boolean;
	readonly bytes?: number;
	/** `console --attach`: a live session instead of the log's tail. */
	readonly attach: boolean;
	/** `console --attach --until PATTERN`: end once the output matches (a regular expression). */
	readonly until?: string;
	/** `console --attach --read-only`: watch without taking the writer's seat. */
	readonly readOnly: boolean;
	/** `group delete --wait`: return once the group's members are gone. */
	readonly wait: boolean;
	readonly refresh: number;
	readonly ca?: string;
	readonly cert?: string;
	readonly key?: string;
	/** RabbitMQ users whose events count, comma-separated ('' : the connection's own user). */
	readonly agentUsers: string;
	/** `group create|scale`: size, bounds, health check, member restart policy, graces (seconds). */
	readonly size?: number;
	readonly min?: number;
	readonly max?: number;
	readonly health?: string;
	readonly healthGrace?: number;
	readonly unhealthyAfter?: number;
	readonly hostGrace?: number;
	/** `group create|update --scale-on cpu>70%` and its tuning: low mark (%), step, window, cooldown and warm-up (seconds). */
	readonly scaleOn?: string;
	readonly scaleLow?: number;
	readonly scaleStep?: number;
	readonly scaleWindow?: number;
	readonly scaleCooldown?: number;
	readonly scaleWarmup?: number;
	readonly help: boolean;
	readonly version: boolean;
};

export type CliArgs = {
	/** The subcommand (`list`, `start`, …); undefined runs the TUI. */
	readonly command: string | undefined;
	readonly rest: readonly string[];
	readonly flags: CliFlags;
};

const OPTIONS = {
	amqp: {type: 'string'},
	namespace: {type: 'string'},
	timeout: {type: 'string'},
	json: {type: 'boolean'},
	image: {type: 'string'},
	host: {type: 'string'},
	to: {type: 'string'},
	memory: {type: 'string'},
	cpus: {type: 'string'},
	network: {type: 'string'},
	'user-data': {type: 'string'},
	'ssh-key': {type: 'string', multiple: true},
	kill: {type: 'boolean'},
	grace: {type: 'string'},
	restart: {type: 'string'},
	'disk-size': {type: 'string'},
	hard: {type: 'boolean'},
	yes: {type: 'boolean', short: 'y'},
	bytes: {type: 'string'},
	attach: {type: 'boolean'},
	until: {type: 'string'},
	'read-only': {type: 'boolean'},
	wait: {type: 'boolean'},
	refresh: {type: 'string'},
	ca: {type: 'string'},
	cert: {type: 'string'},
	key: {type: 'string'},
	'agent-users': {type: 'string'},
	size: {type: 'string'},
	min: {type: 'string'},
	max: {type: 'string'},
	health: {type: 'string'},
	'health-grace': {type: 'string'},
	'unhealthy-after': {type: 'string'},
	'host-grace': {type: 'string'},
	'scale-on': {type: 'string'},
	'scale-low': {type: 'string'},
	'scale-step': {type: 'string'},
	'scale-window': {type: 'string'},
	'scale-cooldown': {type: 'string'},
	'scale-warmup': {type: 'string'},
	help: {type: 'boolean', short: 'h'},
	version: {type: 'boolean'},
} as const;

/** A numeric flag: a number (checked further by its command), or a usage error naming the flag. */
function numberFlag(name: string, value: string | undefined): number | undefined {
	if (value === undefined) {
		return undefined;
	}

	const number = value.trim() === '' ? Number.NaN : Number(value);
	if (!Number.isFinite(number)) {
		throw new UsageError(`invalid --${name} ${JSON.stringify(value)}: must be a number`);
	}

	return number;
}

export function parseCliArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): CliArgs {
	let parsed;
	try {
		parsed = parseArgs({args: [...argv], options: OPTIONS, allowPositionals: true, strict: true});
	} catch (error) {
		// parseArgs says e.g. "Unknown option '--fast'. To specify a positional argument starting with a '-', …"
		const message = (error as Error).message.replace(/\. To specify a positional.*$/s, '');
		throw new UsageError(`${message} (try --help)`, {cause: error});
	}

	const {values, positionals} = parsed;
	const [command, ...rest] = positionals;
	const flags: CliFlags = {
		amqp: values.amqp ?? env.KLOUD_AMQP_URL ?? DEFAULT_AMQP_URL,
		namespace: values.namespace ?? env.KLOUD_NAMESPACE ?? 'kloud',
		json: values.json ?? false,
		kill: values.kill ?? false,
		hard: values.hard ?? false,
		yes: values.yes ?? false,
		attach: values.attach ?? false,
		readOnly: values['read-only'] ?? false,
		wait: values.wait ?? false,
		help: values.help ?? false,
		version: values.version ?? false,
		sshKey: values['ssh-key'] ?? [],
		agentUsers: values['agent-users'] ?? env.KLOUD_AGENT_USERS ?? '',
		refresh: numberFlag('refresh', values.refresh) ?? 2,
		...defined({
			timeout: numberFlag('timeout', values.timeout),
			memory: numberFlag('memory', values.memory),
			cpus: numberFlag('cpus', values.cpus),
			grace: numberFlag('grace', values.grace),
			bytes: numberFlag('bytes', values.bytes),
			size: numberFlag('size', values.size),
			min: numberFlag('min', values.min),
			max: numberFlag('max', values.max),
			healthGrace: numberFlag('health-grace', values['health-grace']),
			unhealthyAfter: numberFlag('unhealthy-after', values['unhealthy-after']),
			hostGrace: numberFlag('host-grace', values['host-grace']),
			health: values.health,
			scaleOn: values['scale-on'],
			scaleLow: numberFlag('scale-low', values['scale-low']),
			scaleStep: numberFlag('scale-step', values['scale-step']),
			scaleWindow: numberFlag('scale-window', values['scale-window']),
			scaleCooldown: numberFlag('scale-cooldown', values['scale-cooldown']),
			scaleWarmup: numberFlag('scale-warmup', values['scale-warmup']),
			image: values.image,
			host: values.host,
			to: values.to,
			network: values.network,
			userData: values['user-data'],
			restart: values.restart,
			diskSize: values['disk-size'],
			until: values.until,
			ca: values.ca,
			cert: values.cert,
			key: values.key,
		}),
	};
	return {command, rest, flags};
}

/** `object` without its undefined properties (the flags' optional fields stay absent, not undefined). */
function defined<T extends Record<string, unknown>>(object: T): Partial<{[K in keyof T]: Exclude<T[K], undefined>}> {
	return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<{[K in keyof T]: Exclude<T[K], undefined>}>;
}
