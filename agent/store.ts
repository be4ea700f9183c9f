/** Reads and writes VM records and their directories under the agent's state root. */
import {appendFile, mkdir, open, readFile, readdir, rename, rm, stat, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {VM_ID_PATTERN} from '../source/protocol/index.js';
import {logSettled} from './log-files.js';
import {checkStateRoot} from './state-root.js';
import {goneRecordSchema, vmRecordSchema, type GoneRecord, type VmRecord} from './record.js';
import {vmPaths, type VmPaths} from './vm-paths.js';

export type StoredRecords = {readonly records: VmRecord[]; readonly unreadable: string[]};

export class StateStore {
	readonly root: string;

	constructor(root: string) {
		this.root = root;
	}

	paths(id: string): VmPaths {
		return vmPaths(this.root, id);
	}

	/** Makes the state root if it is missing, and refuses one that is unsafe (`StateRootError`). */
	async init(): Promise<void> {
		// State holds consoles and disks: not for other users' eyes.
		await mkdir(this.root, {recursive: true, mode: 0o700});
		await checkStateRoot(this.root);
	}

	async create(record: VmRecord): Promise<VmPaths> {
		const paths = this.paths(record.id);
		await mkdir(paths.dir, {mode: 0o700});
		await this.write(record);
		return paths;
	}

	/**
	 * Atomic replace, so a crash mid-write never leaves a torn record; flushed before the rename, so
	 * after a power loss the record is the old one or the new one, never an empty file.
	 */
	async write(record: VmRecord): Promise<void> {
		const paths = this.paths(record.id);
		const temporary = `${paths.meta}.tmp`;
		const handle = await open(temporary, 'w', 0o600);
		try {
			await handle.writeFile(JSON.stringify(record, null, '\t'));
			await handle.sync();
		} finally {
			await handle.close();
		}

		await rename(temporary, paths.meta);
	}

	async remove(id: string): Promise<void> {
		// A console rotation under way would write `console.log.1` into the directory being removed.
		await logSettled(this.paths(id).console);
		await rm(this.paths(id).dir, {recursive: true, force: true});
	}

	async exists(id: string): Promise<boolean> {
		return stat(this.paths(id).dir).then(
			() => true,
			() => false,
		);
	}

	async readAll(): Promise<StoredRecords> {
		const records: VmRecord[] = [];
		const unreadable: string[] = [];
		const entries = await readdir(this.root, {withFileTypes: true}).catch(() => []);
		for (const entry of entries) {
			if (!entry.isDirectory() || !VM_ID_PATTERN.test(entry.name)) {
				continue;
			}

			const record = await this.read(entry.name);
			if (record) {
				records.push(record);
			} else {
				unreadable.push(entry.name);
			}
		}

		return {records, unreadable};
	}

	async read(id: string): Promise<VmRecord | undefined> {
		try {
			const parsed = vmRecordSchema.safeParse(JSON.parse(await readFile(this.paths(id).meta, 'utf8')));
			return parsed.success && parsed.data.id === id ? parsed.data : undefined;
		} catch {
			return undefined;
		}
	}

	/** `gone.jsonl`: one line per deleted VM (stopped VM, from agents older than the lifecycle), oldest first (not a VM directory: ids never contain a dot). */
	get gonePath(): string {
		return join(this.root, 'gone.jsonl');
	}

	/** Remembers a deleted VM: one appended line, so a crash can tear at most that line. */
	async appendGone(entry: GoneRecord): Promise<void> {
		await appendFile(this.gonePath, `${JSON.stringify(entry)}\n`, {mode: 0o600});
	}

	/**
	 * The deleted VMs remembered, oldest first, at most `limit` (the newest); torn or foreign lines are
	 * skipped. When the file holds more than that, it is rewritten (atomically) with only those kept.
	 */
	async readGone(limit: number): Promise<GoneRecord[]> {
		const text = await readFile(this.gonePath, 'utf8').catch(() => '');
		const lines = text.split('\n').filter(line => line !== '');
		const entries = lines.flatMap(line => {
			try {
				const parsed = goneRecordSchema.safeParse(JSON.parse(line));
				return parsed.success ? [parsed.data] : [];
			} catch {
				return [];
			}
		});
		const kept = entries.slice(-limit);
		if (kept.length < lines.length) {
			await this.rewriteGone(kept);
		}

		return kept;
	}

	/** Replaces `gone.jsonl` with `entries` (atomically): how a long-running agent keeps it bounded. */
	async rewriteGone(entries: readonly GoneRecord[]): Promise<void> {
		const temporary = `${this.gonePath}.tmp`;
		await writeFile(temporary, entries.map(entry => `${JSON.stringify(entry)}\n`).join(''), {mode: 0o600});
		await rename(temporary, this.gonePath);
	}

	/** The last `bytes` of a file, or '' when it does not exist. */
	async tail(path: string, bytes: number): Promise<string> {
		let handle;
		try {
			handle = await open(path, 'r');
			const {size} = await handle.stat();
			const length = Math.min(bytes, size);
			const buffer = Buffer.alloc(length);
			await handle.read(buffer, 0, length, size - length);
			return buffer.toString('utf8');
		} catch {
			return '';
		} finally {
			await handle?.close();
		}
	}
}
