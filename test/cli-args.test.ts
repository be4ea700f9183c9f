/** `kloud-tui`'s command line (source/cli/args.ts): flags, defaults from the environment, and usage errors. */
import {describe, expect, it} from 'vitest';
import {parseCliArgs, UsageError} from '../source/cli/args.js';

describe('parseCliArgs', () => {
	it.each([
		[[], {}, {command: undefined, rest: [], flags: {amqp: 'amqp://guest:guest@127.0.0.1:5672', namespace: 'kloud', refresh: 2, json: false, kill: false, hard: false, yes: false, sshKey: []}}],
		[['list', '--json'], {KLOUD_NAMESPACE: 'prod'}, {command: 'list', flags: {json: true, namespace: 'prod'}}],
		[['stop', 'vm-abcdefgh', '--kill', '--grace', '5'], {}, {command: 'stop', rest: ['vm-abcdefgh'], flags: {kill: true, grace: 5}}],
		[['start', '--image', 'demo', '--user-data', 'u.sh', '--ssh-key', 'a.pub', '--ssh-key', 'b.pub', '--memory', '128'], {}, {flags: {image: 'demo', userData: 'u.sh', sshKey: ['a.pub', 'b.pub'], memory: 128}}],
		[['list', '--amqp', 'amqp://x@h'], {KLOUD_AMQP_URL: 'amqp://env@h'}, {flags: {amqp: 'amqp://x@h'}}],
		[['hosts'], {KLOUD_AMQP_URL: 'amqp://env@h'}, {flags: {amqp: 'amqp://env@h'}}],
		[['list', '-h'], {}, {flags: {help: true}}],
		[['start', '--image', 'demo', '--restart', 'always', '--disk-size', '10G'], {}, {command: 'start', flags: {restart: 'always', diskSize: '10G'}}],
		[['reboot', 'vm-abcdefgh', '--hard'], {}, {command: 'reboot', rest: ['vm-abcdefgh'], flags: {hard: true, yes: false}}],
		[['delete', 'vm-abcdefgh', '-y', '--grace', '3'], {}, {command: 'delete', rest: ['vm-abcdefgh'], flags: {yes: true, grace: 3, hard: false}}],
	])('%j with env %j', (argv, env, expected) => {
		expect(parseCliArgs(argv, env)).toMatchObject(expected);
	});

	it('leaves flags that were not given absent, not undefined', () => {
		expect(Object.keys(parseCliArgs(['list'], {}).flags)).not.toContain('timeout');
	});

	it.each([
		[['list', '--fast'], "Unknown option '--fast' (try --help)"],
		[['start', '--memory', 'lots'], 'invalid --memory "lots": must be a number'],
		[['list', '--timeout', ''], 'invalid --timeout "": must be a number'],
		[['--refresh', 'soon'], 'invalid --refresh "soon": must be a number'],
		[['list', '--json=yes'], "Option '--json' does not take an argument (try --help)"],
	])('%j is a usage error: %s', (argv, message) => {
		expect(() => parseCliArgs(argv, {})).toThrow(UsageError);
		expect(() => parseCliArgs(argv, {})).toThrow(message);
	});
});
