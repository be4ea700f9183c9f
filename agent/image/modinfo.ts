/**
 * Reads a kernel module's `.modinfo` section (what `modinfo(8)` prints) from the module's ELF bytes.
 * Pure. Debian's kernel package ships no `modules.dep` (its postinst runs depmod), so the image builder
 * learns each module's dependencies from here, as depmod itself does.
 */

/** Thrown when bytes are not a 64-bit little-endian ELF file with a `.modinfo` section. */
export class ModuleFormatError extends Error {
	override name = 'ModuleFormatError';
}

/** The `key=value` pairs of a module's `.modinfo` section, in file order (keys such as `alias` repeat). */
export function readModinfo(elf: Uint8Array, label = 'module'): Array<[key: string, value: string]> {
	const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
	const isElf = elf.length >= 64 && elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c && elf[3] === 0x46;
	if (!isElf) {
		throw new ModuleFormatError(`${label}: not an ELF file`);
	}

	if (elf[4] !== 2 || elf[5] !== 1) {
		throw new ModuleFormatError(`${label}: not a 64-bit little-endian ELF file`);
	}

	const sectionTable = Number(view.getBigUint64(0x28, true));
	const entrySize = view.getUint16(0x3a, true);
	const count = view.getUint16(0x3c, true);
	const namesIndex = view.getUint16(0x3e, true);
	if (entrySize < 40 || sectionTable + entrySize * count > elf.length || namesIndex >= count) {
		throw new ModuleFormatError(`${label}: truncated or corrupt ELF section table`);
	}

	const section = (index: number): {name: number; offset: number; size: number} => {
		const base = sectionTable + index * entrySize;
		return {
			name: view.getUint32(base, true),
			offset: Number(view.getBigUint64(base + 24, true)),
			size: Number(view.getBigUint64(base + 32, true)),
		};
	};

	const names = section(namesIndex);
	const decoder = new TextDecoder();
	for (let index = 0; index < count; index++) {
		const candidate = section(index);
		const nameStart = names.offset + candidate.name;
		const nameEnd = elf.indexOf(0, nameStart);
		if (nameEnd < 0 || decoder.decode(elf.subarray(nameStart, nameEnd)) !== '.modinfo') {
			continue;
		}

		if (candidate.offset + candidate.size > elf.length) {
			throw new ModuleFormatError(`${label}: .modinfo runs past the end of the file`);
		}

		return decoder
			.decode(elf.subarray(candidate.offset, candidate.offset + candidate.size))
			.split('\0')
			.filter(field => field.includes('='))
			.map(field => {
				const equals = field.indexOf('=');
				return [field.slice(0, equals), field.slice(equals + 1)];
			});
	}

	throw new ModuleFormatError(`${label}: no .modinfo section`);
}

/** The names of the modules that a module needs loaded first (its `depends=` field), as written there. */
export function moduleDependencies(elf: Uint8Array, label = 'module'): string[] {
	const depends = readModinfo(elf, label).find(([key]) => key === 'depends')?.[1] ?? '';
	return depends.split(',').filter(name => name !== '');
}
