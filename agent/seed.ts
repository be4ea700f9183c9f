/**
 * Pure: the files of a VM's NoCloud seed (the CD-ROM labelled `cidata` that cloud-init, and the
 * demo image's `/init`, read at boot). `meta-data` names the instance and its hostname (both the VM
 * id) and lists the SSH public keys; `user-data` is the start's user-data as given.
 */
import {VM_ID_PATTERN} from '../source/protocol/messages.js';

/** The volume label a NoCloud seed is found by. */
export const SEED_VOLUME_LABEL = 'cidata';

/** What the guest gets when a start carries no user-data: an empty cloud-config, which changes nothing. */
export const EMPTY_USER_DATA = '#cloud-config\n';

/** What goes into one VM's seed. */
export type SeedSpec = {
	readonly vmId: string;
	readonly userData?: string;
	readonly sshKeys?: readonly string[];
};

/** The seed's files by name, in the order they go on the ISO. */
export type SeedFiles = {
	readonly 'user-data': string;
	readonly 'meta-data': string;
};

/** Thrown for a seed spec that would produce invalid or misleading meta-data. */
export class SeedSpecError extends Error {
	override name = 'SeedSpecError';
}

/** The `user-data` and `meta-data` files of `spec`'s NoCloud seed. */
export function seedFiles(spec: SeedSpec): SeedFiles {
	if (!VM_ID_PATTERN.test(spec.vmId)) {
		throw new SeedSpecError(`invalid VM id ${JSON.stringify(spec.vmId)} for a NoCloud seed: expected "vm-" and 8 lowercase letters`);
	}

	const keys = spec.sshKeys ?? [];
	for (const key of keys) {
		// A newline would end the YAML scalar and let a key smuggle in more meta-data.
		if (/[\u0000-\u001F\u007F]/.test(key) || key.trim() === '') {
			throw new SeedSpecError(`invalid SSH public key for ${spec.vmId}: one printable line expected`);
		}
	}

	const lines = [`instance-id: ${spec.vmId}`, `local-hostname: ${spec.vmId}`];
	if (keys.length > 0) {
		// JSON strings are valid YAML double-quoted scalars: no key text is ever read as YAML syntax.
		lines.push('public-keys:', ...keys.map(key => `  - ${JSON.stringify(key)}`));
	}

	return {'user-data': spec.userData ?? EMPTY_USER_DATA, 'meta-data': `${lines.join('\n')}\n`};
}
