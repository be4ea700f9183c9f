/** `--disk-size` (source/cli/disk-size.ts): sizes with binary units, and clear refusals. */
import {describe, expect, it} from 'vitest';
import {parseDiskSize} from '../source/cli/disk-size.js';

describe('parseDiskSize', () => {
	it.each([
		['512M', 512],
		['10G', 10_240],
		['10g', 10_240],
		['1.5G', 1536],
		['2GiB', 2048],
		['3GB', 3072],
		['1T', 1_048_576],
		[' 20G ', 20_480],
		['16T', 16 * 1_048_576],
	])('%j is %d MiB', (text, mb) => {
		expect(parseDiskSize(text)).toEqual({ok: true, mb});
	});

	it.each([
		['10', 'invalid --disk-size "10" (give a unit): expected a size like 512M, 10G or 1T'],
		['10X', 'invalid --disk-size "10X": expected a size like 512M, 10G or 1T'],
		['', 'invalid --disk-size "": expected a size like 512M, 10G or 1T'],
		['-1G', 'invalid --disk-size "-1G": expected a size like 512M, 10G or 1T'],
		['0G', 'invalid --disk-size "0G": must be a whole number of MiB ≥ 1M'],
		['0.5M', 'invalid --disk-size "0.5M": must be a whole number of MiB ≥ 1M'],
		['17T', 'invalid --disk-size "17T": at most 16T'],
	])('%j is refused: %s', (text, error) => {
		expect(parseDiskSize(text)).toEqual({ok: false, error});
	});
});
