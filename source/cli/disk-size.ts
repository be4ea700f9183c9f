/**
 * `--disk-size` as MiB: a number with a binary unit (`512M`, `10G`, `1.5T`; `MiB`/`GiB`/`TiB` and
 * `MB`/`GB`/`TB` read the same), so `10G` is 10240 MiB as `qemu-img` reads it. Pure.
 */
import {MAX_DISK_MB} from '../protocol/index.js';

const UNIT_MB: Readonly<Record<string, number>> = {m: 1, g: 1024, t: 1024 * 1024};
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([mgt])(?:i?b)?$/i;

/** The size in whole MiB, or a one-line reason why `text` is not a disk size. */
export function parseDiskSize(text: string): {ok: true; mb: number} | {ok: false; error: string} {
	const match = SIZE_PATTERN.exec(text.trim());
	const shown = JSON.stringify(text);
	if (!match) {
		const hint = /^\d+(?:\.\d+)?$/.test(text.trim()) ? ' (give a unit)' : '';
		return {ok: false, error: `invalid --disk-size ${shown}${hint}: expected a size like 512M, 10G or 1T`};
	}

	const mb = Number(match[1]) * UNIT_MB[match[2]!.toLowerCase()]!;
	if (!Number.isInteger(mb) || mb < 1) {
		return {ok: false, error: `invalid --disk-size ${shown}: must be a whole number of MiB ≥ 1M`};
	}

	if (mb > MAX_DISK_MB) {
		return {ok: false, error: `invalid --disk-size ${shown}: at most ${MAX_DISK_MB / 1024 / 1024}T`};
	}

	return {ok: true, mb};
}
