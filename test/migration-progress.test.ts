/**
 * A live migration's progress in the VM lists: the source agent's coarse steps (and so how often
 * its list version changes), one row per VM when hosts' lists are merged (the copy not marked
 * migrating wins), and the STATE text the CLI's `list` and the TUI show.
 */
import {describe, expect, it} from 'vitest';
import {nextProgress, percentOf, PROGRESS_STEP} from '../agent/migration-progress.js';
import {vmsVersion} from '../agent/list-version.js';
import type {KloudClient} from '../source/broker/client.js';
import {listCommand} from '../source/commands.js';
import {describeState, formatVms} from '../source/format.js';
import type {HostSnapshot, Vm, VmMigration} from '../source/protocol/index.js';
import {oneCopyPerVm, preferredCopy} from '../source/protocol/vm-copies.js';
import {makeVm, snapshot} from './helpers/tui.js';

const MIGRATING: VmMigration = {to: 'host-b', phase: 'ram', percent: 42, startedAt: 1_800_000_000_000};
const onSource = makeVm('vm-mmmmmmmm', 'host-a', {migration: MIGRATING});
const onDestination = makeVm('vm-mmmmmmmm', 'host-b', {pid: 200});

describe('the source agent reports progress in coarse steps', () => {
	it.each([
		[0, 0, 0],
		[50, 100, 50],
		[99.9, 100, 99],
		[150, 100, 100],
		[-5, 100, 0],
		[10, 0, 0],
		[Number.NaN, 100, 0],
	])('percentOf(%d, %d) = %d', (done, total, percent) => {
		expect(percentOf(done, total)).toBe(percent);
	});

	it('moves on only with a new phase or a move of 5 points or more (either way)', () => {
		const held: VmMigration = {to: 'host-b', phase: 'disk', percent: 20, startedAt: 1};
		expect(nextProgress(held, 'disk', 24)).toBe(held);
		expect(nextProgress(held, 'disk', 16)).toBe(held);
		expect(nextProgress(held, 'disk', 25)).toEqual({...held, percent: 25});
		expect(nextProgress(held, 'disk', 15)).toEqual({...held, percent: 15});
		expect(nextProgress(held, 'ram', 20)).toEqual({...held, phase: 'ram'});
		expect(nextProgress(held, 'switching', 100)).toEqual({...held, phase: 'switching', percent: 100});
	});

	it('so a migration seen at every percent of disk and RAM (203 polls) gives 43 list versions', () => {
		let held: VmMigration = {to: 'host-b', phase: 'disk', percent: 0, startedAt: 1};
		const versions = new Set([vmsVersion([makeVm('vm-mmmmmmmm', 'host-a', {migration: held})])]);
		const seen: Array<[VmMigration['phase'], number]> = [
			...Array.from({length: 101}, (_, percent) => ['disk', percent] as [VmMigration['phase'], number]),
			...Array.from({length: 101}, (_, percent) => ['ram', percent] as [VmMigration['phase'], number]),
			['switching', 100],
		];
		for (const [phase, percent] of seen) {
			held = nextProgress(held, phase, percent);
			versions.add(vmsVersion([makeVm('vm-mmmmmmmm', 'host-a', {migration: held})]));
		}

		// Disk 0, 5, …, 100 (21, the start among them), RAM 0, 5, …, 100 (21), switching (1).
		expect(versions.size).toBe(21 + 21 + 1);
		expect(PROGRESS_STEP).toBe(5);
		// A VM not migrating, and the same VM mid-migration: different versions (the list carries the change).
		expect(vmsVersion([makeVm('vm-mmmmmmmm', 'host-a')])).not.toBe(vmsVersion([onSource]));
	});
});

describe('a VM listed by two hosts (mid-handover) is one row: the copy not marked migrating', () => {
	it.each([
		['source then destination', [onSource, onDestination], onDestination],
		['destination then source', [onDestination, onSource], onDestination],
		['neither marked: the later', [makeVm('vm-mmmmmmmm', 'host-a'), onDestination], onDestination],
		['both marked: the later', [onSource, {...onDestination, migration: MIGRATING}], {...onDestination, migration: MIGRATING}],
	] as Array<[string, Vm[], Vm]>)('%s', (_, [first, second], kept) => {
		expect(preferredCopy(first!, second!)).toEqual(kept);
		expect(oneCopyPerVm([first!, second!])).toEqual([kept]);
	});

	it('keeps every other VM, in the order first seen', () => {
		const other = makeVm('vm-oooooooo', 'host-a');
		expect(oneCopyPerVm([onSource, other, onDestination]).map(vm => `${vm.id}@${vm.host}`)).toEqual(['vm-mmmmmmmm@host-b', 'vm-oooooooo@host-a']);
	});

	it('kloud-tui list (table and --json) shows it once, on the destination', async () => {
		const replies: HostSnapshot[] = [snapshot('host-b', [onDestination]), snapshot('host-a', [onSource, makeVm('vm-oooooooo', 'host-a')])];
		const client = {list: async () => ({replies, missing: [], durationMs: 1})} as unknown as KloudClient;
		const json = JSON.parse((await listCommand(client, {json: true, timeoutMs: 1000})).stdout) as {vms: Vm[]};
		expect(json.vms.map(vm => `${vm.id}@${vm.host}`)).toEqual(['vm-oooooooo@host-a', 'vm-mmmmmmmm@host-b']);
		const table = (await listCommand(client, {json: false, timeoutMs: 1000})).stdout;
		expect(table.split('\n').filter(line => line.includes('vm-mmmmmmmm'))).toHaveLength(1);
	});

	it('kloud-tui list --json carries the field while it migrates', async () => {
		const client = {list: async () => ({replies: [snapshot('host-a', [onSource]), snapshot('host-b', [])], missing: [], durationMs: 1})} as unknown as KloudClient;
		const json = JSON.parse((await listCommand(client, {json: true, timeoutMs: 1000})).stdout) as {vms: Vm[]};
		expect(json.vms).toEqual([expect.objectContaining({id: 'vm-mmmmmmmm', host: 'host-a', migration: MIGRATING})]);
	});
});

describe('STATE while it migrates', () => {
	it('says where to and how far, in the CLI table as in the TUI', () => {
		expect(describeState(onSource)).toBe('migrating→host-b 42%');
		expect(describeState({...onSource, migration: {...MIGRATING, phase: 'switching', percent: 100}})).toBe('migrating→host-b 100%');
		expect(describeState(onDestination)).toBe('running');
		expect(formatVms([onSource]).split('\n')[1]).toMatch(/^host-a\s+vm-mmmmmmmm\s+demo\s+migrating→host-b 42%\s/);
	});
});
