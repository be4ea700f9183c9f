/**
 * Reads what a dynamically linked program or library needs at run time from its ELF bytes: the
 * interpreter (`PT_INTERP`, the dynamic loader's path) and the `DT_NEEDED` sonames, as `readelf -d`
 * prints them. Pure. The demo image builder uses it to put a Debian program (dropbear) and exactly
 * the shared libraries it loads into the busybox initramfs, without running the program.
 */

/** Thrown when bytes are not a readable 64-bit little-endian ELF file. */
export class ElfFormatError extends Error {
	override name = 'ElfFormatError';
}

/** What a dynamically linked ELF file asks of the loader. */
export type ElfDynamicInfo = {
	/** The `PT_INTERP` path (`/lib64/ld-linux-x86-64.so.2`); undefined for a library or a static program. */
	readonly interpreter: string | undefined;
	/** The `DT_NEEDED` sonames in file order; empty for a static program. */
	readonly needed: readonly string[];
};

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

type Segment = {type: number; offset: number; vaddr: number; fileSize: number};

/** The interpreter and `DT_NEEDED` entries of a 64-bit little-endian ELF file. */
export function readElfDynamic(elf: Uint8Array, label = 'ELF file'): ElfDynamicInfo {
	const isElf = elf.length >= 64 && elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c && elf[3] === 0x46;
	if (!isElf) {
		throw new ElfFormatError(`${label}: not an ELF file`);
	}

	if (elf[4] !== 2 || elf[5] !== 1) {
		throw new ElfFormatError(`${label}: not a 64-bit little-endian ELF file`);
	}

	const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
	const table = Number(view.getBigUint64(0x20, true));
	const entrySize = view.getUint16(0x36, true);
	const count = view.getUint16(0x38, true);
	if (entrySize < 56 || table + entrySize * count > elf.length) {
		throw new ElfFormatError(`${label}: truncated or corrupt ELF program header table`);
	}

	const segments: Segment[] = [];
	for (let index = 0; index < count; index++) {
		const base = table + index * entrySize;
		const segment = {
			type: view.getUint32(base, true),
			offset: Number(view.getBigUint64(base + 8, true)),
			vaddr: Number(view.getBigUint64(base + 16, true)),
			fileSize: Number(view.getBigUint64(base + 32, true)),
		};
		if (segment.offset + segment.fileSize > elf.length) {
			throw new ElfFormatError(`${label}: a segment reaches past the end of the file`);
		}

		segments.push(segment);
	}

	const interp = segments.find(segment => segment.type === PT_INTERP);
	const interpreter = interp === undefined ? undefined : cString(elf, interp.offset, interp.offset + interp.fileSize, label);
	const dynamic = segments.find(segment => segment.type === PT_DYNAMIC);
	if (dynamic === undefined) {
		return {interpreter, needed: []};
	}

	const neededOffsets: number[] = [];
	let stringTable: number | undefined;
	for (let entry = dynamic.offset; entry + 16 <= dynamic.offset + dynamic.fileSize; entry += 16) {
		const tag = view.getBigInt64(entry, true);
		const value = Number(view.getBigUint64(entry + 8, true));
		if (tag === DT_NULL) {
			break;
		}

		if (tag === DT_NEEDED) {
			neededOffsets.push(value);
		} else if (tag === DT_STRTAB) {
			stringTable = value;
		}
	}

	if (neededOffsets.length === 0) {
		return {interpreter, needed: []};
	}

	if (stringTable === undefined) {
		throw new ElfFormatError(`${label}: DT_NEEDED entries without a string table`);
	}

	// DT_STRTAB is an address in memory: the loadable segment that holds it gives its place in the file.
	const address = stringTable;
	const load = segments.find(segment => segment.type === PT_LOAD && address >= segment.vaddr && address < segment.vaddr + segment.fileSize);
	if (load === undefined) {
		throw new ElfFormatError(`${label}: the dynamic string table is in no loadable segment`);
	}

	const strings = load.offset + (address - load.vaddr);
	const end = load.offset + load.fileSize;
	return {interpreter, needed: neededOffsets.map(offset => cString(elf, strings + offset, end, label))};
}

function cString(bytes: Uint8Array, start: number, end: number, label: string): string {
	const stop = bytes.subarray(0, end).indexOf(0, start);
	if (stop === -1) {
		throw new ElfFormatError(`${label}: unterminated string`);
	}

	return Buffer.from(bytes.subarray(start, stop)).toString('utf8');
}

/** What `neededClosure` found. */
export type NeededClosure = {
	/** Every soname loaded, directly or through another library, in first-needed order. */
	readonly libraries: readonly string[];
	/** Sonames that `lookup` did not know, sorted. */
	readonly missing: readonly string[];
};

/**
 * The shared libraries that programs load, with the libraries those load in turn: `lookup` gives a
 * library's own dynamic info by soname (undefined when it is not to be had). The loader's own soname
 * (`ld-linux-x86-64.so.2`, needed by libc) is left out: it goes in as the interpreter.
 */
export function neededClosure(programs: readonly ElfDynamicInfo[], lookup: (soname: string) => ElfDynamicInfo | undefined): NeededClosure {
	const interpreters = new Set(programs.map(program => program.interpreter?.slice(program.interpreter.lastIndexOf('/') + 1)).filter(name => name !== undefined));
	const libraries: string[] = [];
	const missing = new Set<string>();
	const queue = programs.flatMap(program => program.needed);
	for (let soname = queue.shift(); soname !== undefined; soname = queue.shift()) {
		if (libraries.includes(soname) || missing.has(soname) || interpreters.has(soname)) {
			continue;
		}

		const info = lookup(soname);
		if (info === undefined) {
			missing.add(soname);
			continue;
		}

		libraries.push(soname);
		queue.push(...info.needed);
	}

	return {libraries, missing: [...missing].sort()};
}
