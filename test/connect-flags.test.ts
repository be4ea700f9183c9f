/** The command line's TLS flags, shared by kloud-tui and kloud-agent: files read, and refused with a clear error where they cannot work. */
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {UsageError} from '../source/cli/args.js';
import {tlsOptions} from '../source/cli/connect-flags.js';

let dir: string;
let pem: string;

beforeAll(async () => {
	dir = await mkdtemp(join(tmpdir(), 'kloud-flags-'));
	pem = join(dir, 'ca.pem');
	await writeFile(pem, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
});

afterAll(async () => rm(dir, {recursive: true, force: true}));

describe('tlsOptions', () => {
	it('reads the files for amqps:// URLs, every node of a list', () => {
		expect(tlsOptions({amqp: 'amqps://a:5671,amqps://b:5671', ca: pem})).toEqual({ca: [expect.any(Buffer)]});
		expect(tlsOptions({amqp: 'amqp://a'})).toBeUndefined();
	});

	it('refuses certificates when any URL of the list is plain amqp://, a lone cert or key, an unreadable file, a bad list', () => {
		expect(() => tlsOptions({amqp: 'amqp://a', ca: pem})).toThrow(new UsageError('--ca, --cert and --key need an amqps:// broker URL'));
		expect(() => tlsOptions({amqp: 'amqps://a,amqp://b', ca: pem})).toThrow('every one of the --amqp list');
		expect(() => tlsOptions({amqp: 'amqps://a', cert: pem})).toThrow('--cert and --key go together');
		expect(() => tlsOptions({amqp: 'amqps://a', ca: join(dir, 'missing.pem')})).toThrow(/cannot read --ca .*missing\.pem/);
		expect(() => tlsOptions({amqp: 'amqps://a,http://b', ca: pem})).toThrow(/--amqp: a broker URL starts with amqp:\/\/ or amqps:\/\//);
	});
});
