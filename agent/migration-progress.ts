/**
 * A live migration's progress as its source host reports it in its VM list (`Vm.migration`): the
 * phase and how far it is. The percent moves on only in steps of `PROGRESS_STEP` points (or with a
 * new phase), so the list's version (list-version.ts hashes the VMs) changes a few dozen times per
 * migration instead of at every 50 ms poll of QEMU, and list rounds carry it without flooding. Pure.
 */
import type {MigrationPhase, VmMigration} from '../source/protocol/index.js';

/** Points the reported percent must move before a list shows the new one. */
export const PROGRESS_STEP = 5;

/** `done` of `total` as a whole percent in 0-100 (0 while the total is not known). */
export function percentOf(done: number, total: number): number {
	if (!Number.isFinite(done) || !Number.isFinite(total) || total <= 0) {
		return 0;
	}

	return Math.min(100, Math.max(0, Math.floor((done / total) * 100)));
}

/** The progress to report after seeing `phase` at `percent`: `held` itself (the same object) while neither moved enough. */
export function nextProgress(held: VmMigration, phase: MigrationPhase, percent: number): VmMigration {
	if (phase === held.phase && Math.abs(percent - held.percent) < PROGRESS_STEP) {
		return held;
	}

	return {...held, phase, percent};
}
