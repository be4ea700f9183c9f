import {describe, expect, it} from 'vitest';
import {EMPTY_USER_DATA, SeedSpecError, seedFiles, type SeedSpec} from '../agent/seed.js';

describe('seedFiles', () => {
	const cases: Array<{name: string; spec: SeedSpec; userData: string; metaData: string}> = [
		{
			name: 'no user-data, no keys: the hostname only, and an empty cloud-config',
			spec: {vmId: 'vm-abcdefgh'},
			userData: EMPTY_USER_DATA,
			metaData: 'instance-id: vm-abcdefgh\nlocal-hostname: vm-abcdefgh\n',
		},
		{
			name: 'a user-data script, passed through byte for byte',
			spec: {vmId: 'vm-abcdefgh', userData: '#!/bin/sh\necho "it\'s $(hostname)"\n'},
			userData: '#!/bin/sh\necho "it\'s $(hostname)"\n',
			metaData: 'instance-id: vm-abcdefgh\nlocal-hostname: vm-abcdefgh\n',
		},
		{
			name: 'SSH keys as meta-data public-keys, each a quoted YAML scalar',
			spec: {vmId: 'vm-zyxwvuts', sshKeys: ['ssh-ed25519 AAAAC3Nz ops@example', 'ssh-rsa AAAAB3Nz "quoted": yes #1']},
			userData: EMPTY_USER_DATA,
			metaData:
				'instance-id: vm-zyxwvuts\nlocal-hostname: vm-zyxwvuts\npublic-keys:\n  - "ssh-ed25519 AAAAC3Nz ops@example"\n  - "ssh-rsa AAAAB3Nz \\"quoted\\": yes #1"\n',
		},
		{
			name: 'an empty key list: no public-keys entry',
			spec: {vmId: 'vm-abcdefgh', sshKeys: [], userData: '#cloud-config\npackages: [htop]\n'},
			userData: '#cloud-config\npackages: [htop]\n',
			metaData: 'instance-id: vm-abcdefgh\nlocal-hostname: vm-abcdefgh\n',
		},
	];

	for (const {name, spec, userData, metaData} of cases) {
		it(`renders ${name}`, () => {
			expect(seedFiles(spec)).toEqual({'user-data': userData, 'meta-data': metaData});
		});
	}

	it.each([
		['an invalid VM id', {vmId: 'vm-../x'}, /invalid VM id/],
		['a key with a newline (it would add meta-data)', {vmId: 'vm-abcdefgh', sshKeys: ['ssh-rsa AAAA x\nlocal-hostname: evil']}, /one printable line/],
		['a blank key', {vmId: 'vm-abcdefgh', sshKeys: ['  ']}, /one printable line/],
	])('refuses %s', (_name, spec, message) => {
		expect(() => seedFiles(spec)).toThrow(SeedSpecError);
		expect(() => seedFiles(spec)).toThrow(message);
	});
});
