import {describe, expect, it} from 'vitest';
import {QEMU_BINARY} from '../agent/qemu-args.js';
import {qemuCommand, qemuNetns, type QemuNetns} from '../agent/qemu-netns.js';
import type {NetworkMode} from '../source/protocol/index.js';

describe('qemuNetns', () => {
	const cases: Array<{network: NetworkMode; netns?: string; canUnshare: boolean; expected: QemuNetns; why: string}> = [
		{network: 'user', canUnshare: true, expected: {hasOwnNetns: true}, why: 'a user-mode guest\'s connections leave from an empty namespace'},
		{network: 'user', netns: 'host-a', canUnshare: true, expected: {hasOwnNetns: true}, why: 'not even the agent\'s --netns (its dnsmasq listens there)'},
		{network: 'user', canUnshare: false, expected: {}, why: 'without root: slirp\'s restrict=on alone'},
		{network: 'private', canUnshare: true, expected: {}, why: 'the TAP is in the agent\'s namespace'},
		{network: 'private', netns: 'host-a', canUnshare: true, expected: {netns: 'host-a'}, why: 'the TAP is in --netns'},
		{network: 'public', netns: 'host-a', canUnshare: false, expected: {netns: 'host-a'}, why: 'the TAP is in --netns'},
		{network: 'none', netns: 'host-a', canUnshare: true, expected: {netns: 'host-a'}, why: 'no NIC: as before'},
	];
	for (const {network, netns, canUnshare, expected, why} of cases) {
		it(`${network}${netns ? ` with --netns ${netns}` : ''}${canUnshare ? '' : ', not root'}: ${why}`, () => {
			expect(qemuNetns(network, {...(netns === undefined ? {} : {netns}), canUnshare})).toEqual(expected);
		});
	}
});

describe('qemuCommand', () => {
	const args = ['-name', 'qemu-vm-abcdefgh,process=vm-abcdefgh'];
	const cases: Array<{where: QemuNetns; expected: {file: string; args: string[]}}> = [
		{where: {}, expected: {file: QEMU_BINARY, args}},
		{where: {netns: 'host-a'}, expected: {file: 'ip', args: ['netns', 'exec', 'host-a', QEMU_BINARY, ...args]}},
		// unshare execs QEMU in place (no --fork): the pid the agent gets is QEMU's.
		{where: {hasOwnNetns: true}, expected: {file: 'unshare', args: ['--net', '--', QEMU_BINARY, ...args]}},
		{where: {hasOwnNetns: true, netns: 'host-a'}, expected: {file: 'unshare', args: ['--net', '--', QEMU_BINARY, ...args]}},
	];
	for (const {where, expected} of cases) {
		it(`runs QEMU ${JSON.stringify(where)} as ${expected.file}`, () => {
			expect(qemuCommand(args, where)).toEqual(expected);
		});
	}
});
