import {describe, expect, it} from 'vitest';
import {MAX_MESSAGE_BYTES, MAX_USER_DATA_BYTES, PROTOCOL_VERSION, makeRequest, parseEvent, parseReply, parseReplyValue, parseRequest} from '../source/protocol/index.js';

const stamp = {id: 'req-1', from: 'kloud-tui@test', ts: 1_700_000_000_000};
const wire = (message: object) => JSON.stringify({v: PROTOCOL_VERSION, ...stamp, ...message});
const ED25519_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmJ3aAQ0fYqVZ9vH4cS0e2iqDqz0l0m4f8S2bq7Xk1x ops@example';

describe('parseRequest', () => {
	it.each([
		['vm.start with just an image', {type: 'vm.start', body: {image: 'debian-12'}}],
		['vm.start with every option', {type: 'vm.start', body: {image: 'demo', host: 'host-a', memoryMb: 512, cpus: 2, network: 'public', clientToken: 't-1'}}],
		['vm.start on the user-mode network', {type: 'vm.start', body: {image: 'demo', network: 'user'}}],
		['vm.start with user-data and SSH keys', {type: 'vm.start', body: {image: 'demo', userData: '#!/bin/sh\necho hi\n', sshKeys: [ED25519_KEY, 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= ']}}],
		['vm.start with user-data of exactly 64 KiB', {type: 'vm.start', body: {image: 'demo', userData: 'x'.repeat(MAX_USER_DATA_BYTES)}}],
		['vm.stop with a grace period', {type: 'vm.stop', body: {vmId: 'vm-abcdefgh', graceSeconds: 5}}],
		['vm.kill', {type: 'vm.kill', body: {vmId: 'vm-abcdefgh'}}],
		['vm.list', {type: 'vm.list', body: {}}],
		['vm.list naming the versions it holds', {type: 'vm.list', body: {known: {'host-a': 'AbC_-12345678901234567', 'host-b.lan': 'x'}}}],
		['images.list', {type: 'images.list', body: {}}],
	])('accepts %s', (_name, message) => {
		const parsed = parseRequest(wire(message));
		expect(parsed).toEqual({ok: true, value: {v: PROTOCOL_VERSION, ...stamp, ...message}});
	});

	it.each([
		['malformed JSON', '{"v":1,', 'bad_request', /^malformed JSON/],
		['a JSON array', '[]', 'bad_request', /must be a JSON object/],
		['a missing version', JSON.stringify({type: 'vm.list', body: {}}), 'unsupported_version', /unsupported protocol version null/],
		['a future version', JSON.stringify({v: 2, type: 'vm.list', body: {}}), 'unsupported_version', /version 2 \(this side speaks 1\)/],
		['an unknown command', wire({type: 'vm.explode', body: {}}), 'bad_request', /^vm\.explode: /],
		['a path as image', wire({type: 'vm.start', body: {image: '../../etc/passwd'}}), 'bad_request', /not a path/],
		['an absolute path as image', wire({type: 'vm.start', body: {image: '/etc/passwd'}}), 'bad_request', /not a path/],
		['shell metacharacters in image', wire({type: 'vm.start', body: {image: 'a;rm -rf /'}}), 'bad_request', /invalid image name/],
		['an overlong image name', wire({type: 'vm.start', body: {image: 'a'.repeat(65)}}), 'bad_request', /invalid image name/],
		['a bad VM id', wire({type: 'vm.kill', body: {vmId: 'vm-ABC'}}), 'bad_request', /invalid VM id "vm-ABC"/],
		['absurd memory', wire({type: 'vm.start', body: {image: 'demo', memoryMb: 10 ** 9}}), 'bad_request', /memoryMb/],
		['zero cpus', wire({type: 'vm.start', body: {image: 'demo', cpus: 0}}), 'bad_request', /cpus/],
		['an unknown network', wire({type: 'vm.start', body: {image: 'demo', network: 'bridge'}}), 'bad_request', /invalid network "bridge": expected one of private, public, none, user/],
		['an unknown field', wire({type: 'vm.start', body: {image: 'demo', script: 'x'}}), 'bad_request', /script/],
		[
			'user-data one byte over 64 KiB',
			wire({type: 'vm.start', body: {image: 'demo', userData: 'x'.repeat(MAX_USER_DATA_BYTES + 1)}}),
			'bad_request',
			/^vm\.start: body\.userData: user-data is 65537 bytes, over the limit of 65536 bytes \(64 KiB\)/,
		],
		// 'é' is two bytes in UTF-8: the limit counts bytes, not characters.
		['user-data over 64 KiB in UTF-8 bytes', wire({type: 'vm.start', body: {image: 'demo', userData: 'é'.repeat(40_000)}}), 'bad_request', /user-data is 80000 bytes/],
		['user-data that is not a string', wire({type: 'vm.start', body: {image: 'demo', userData: 42}}), 'bad_request', /userData/],
		['an SSH key with a newline', wire({type: 'vm.start', body: {image: 'demo', sshKeys: [`${ED25519_KEY}\nssh-rsa AAAAB3 evil`]}}), 'bad_request', /invalid SSH public key/],
		['a private key as SSH key', wire({type: 'vm.start', body: {image: 'demo', sshKeys: ['-----BEGIN OPENSSH PRIVATE KEY-----']}}), 'bad_request', /invalid SSH public key/],
		['SSH keys that are not a list', wire({type: 'vm.start', body: {image: 'demo', sshKeys: ED25519_KEY}}), 'bad_request', /sshKeys/],
		['too many SSH keys', wire({type: 'vm.start', body: {image: 'demo', sshKeys: Array.from({length: 17}, () => ED25519_KEY)}}), 'bad_request', /at most 16 SSH keys/],
		['a missing id', JSON.stringify({v: 1, from: 'x', ts: 1, type: 'vm.list', body: {}}), 'bad_request', /id/],
		['a list version that is not a version', wire({type: 'vm.list', body: {known: {'host-a': 'x y'}}}), 'bad_request', /invalid VM list version "x y"/],
		['a list naming a host id with a slash', wire({type: 'vm.list', body: {known: {'../host': 'v1'}}}), 'bad_request', /host id/],
		['a list with an unknown field', wire({type: 'vm.list', body: {since: 3}}), 'bad_request', /since/],
	])('refuses %s with a clear reason', (_name, raw, code, reason) => {
		const parsed = parseRequest(raw);
		expect(parsed.ok).toBe(false);
		if (!parsed.ok) {
			expect(parsed.error.code).toBe(code);
			expect(parsed.error.reason).toMatch(reason);
		}
	});

	it('refuses a message over the size limit before parsing it', () => {
		const parsed = parseRequest(new Uint8Array(MAX_MESSAGE_BYTES + 1));
		expect(parsed).toEqual({ok: false, error: {code: 'bad_request', reason: `message too large: ${MAX_MESSAGE_BYTES + 1} bytes (limit ${MAX_MESSAGE_BYTES})`}});
	});

	it('round-trips what makeRequest builds', () => {
		const request = makeRequest({type: 'vm.stop', body: {vmId: 'vm-qwertyui'}}, stamp);
		expect(parseRequest(JSON.stringify(request))).toEqual({ok: true, value: request});
	});
});

describe('replies and events', () => {
	it('parses an error reply carrying a code and reason', () => {
		const parsed = parseReply(wire({type: 'reply', re: 'req-1', ok: false, code: 'unknown_vm', reason: 'no VM vm-abcdefgh on host h'}));
		expect(parsed.ok && !parsed.value.ok && parsed.value.reason).toBe('no VM vm-abcdefgh on host h');
	});

	it('checks a reply value against the request type', () => {
		expect(parseReplyValue('vm.start', {id: 'nope'}).ok).toBe(false);
		const vm = {id: 'vm-abcdefgh', host: 'h', image: 'demo', state: 'running', memoryMb: 256, cpus: 1, pid: 42, createdAt: 1, uptimeSeconds: 3, ip: null, mac: null, exit: null};
		expect(parseReplyValue('vm.start', vm)).toEqual({ok: true, value: vm});
	});

	it('parses a heartbeat and refuses one without capacity', () => {
		const body = {id: 'host-a', vmCount: 1, maxVms: 8, freeMemoryMb: 100, totalMemoryMb: 200, accel: 'tcg', images: ['demo'], heartbeatMs: 5000, startedAt: 1};
		expect(parseEvent(wire({type: 'host.heartbeat', body})).ok).toBe(true);
		expect(parseEvent(wire({type: 'host.heartbeat', body: {...body, maxVms: undefined}})).ok).toBe(false);
	});

	it('parses a heartbeat announcing a VXLAN underlay and private slot, and refuses a bad one', () => {
		const body = {id: 'host-a', vmCount: 1, maxVms: 8, freeMemoryMb: 100, totalMemoryMb: 200, accel: 'tcg', images: ['demo'], heartbeatMs: 5000, startedAt: 1};
		expect(parseEvent(wire({type: 'host.heartbeat', body: {...body, underlay: '192.0.2.1', privateSlot: 7}})).ok).toBe(true);
		expect(parseEvent(wire({type: 'host.heartbeat', body: {...body, underlay: '192.0.2.300', privateSlot: 1}})).ok).toBe(false);
		expect(parseEvent(wire({type: 'host.heartbeat', body: {...body, underlay: '192.0.2.1', privateSlot: 8}})).ok).toBe(false);
	});

	it('accepts a VM with its network, MAC and IP', () => {
		const vm = {id: 'vm-abcdefgh', host: 'h', image: 'demo', state: 'running', memoryMb: 256, cpus: 1, pid: 42, createdAt: 1, uptimeSeconds: 3, ip: '10.77.0.2', mac: '02:00:00:00:00:01', network: 'private', exit: null};
		expect(parseReplyValue('vm.start', vm)).toEqual({ok: true, value: vm});
		expect(parseReplyValue('vm.start', {...vm, network: 'wifi'}).ok).toBe(false);
	});
});

describe('vm.migrate.prepare names the base content', () => {
	const vm = {id: 'vm-abcdefgh', image: 'demo', memoryMb: 128, cpus: 1, createdAt: 1, startedAt: 2, clientToken: null, owner: null, network: 'none', mac: null, restart: 'no', diskBytes: 67_108_864};
	const prepare = (extra: object) => wire({type: 'vm.migrate.prepare', body: {from: 'host-a', vm: {...vm, ...extra}, seed: 'H4sI'}});

	it('with a sha256 (a source with content-addressed bases) and without (an older one)', () => {
		const sha = 'ab'.repeat(32);
		const parsed = parseRequest(prepare({baseSha256: sha}));
		expect(parsed.ok && parsed.value.type === 'vm.migrate.prepare' && parsed.value.body.vm.baseSha256).toBe(sha);
		expect(parseRequest(prepare({})).ok).toBe(true);
	});

	it.each([['upper case', 'AB'.repeat(32)], ['too short', 'ab'.repeat(31)], ['a path', '../../etc/passwd']])('refuses a base hash that is %s', (_name, baseSha256) => {
		expect(parseRequest(prepare({baseSha256}))).toMatchObject({ok: false, error: {code: 'bad_request', reason: expect.stringMatching(/baseSha256/)}});
	});
});
