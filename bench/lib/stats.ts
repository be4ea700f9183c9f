/** Order statistics for benchmark samples. */
export function quantile(samples: readonly number[], q: number): number {
	if (samples.length === 0) {
		return Number.NaN;
	}

	const sorted = [...samples].sort((a, b) => a - b);
	const position = (sorted.length - 1) * q;
	const low = Math.floor(position);
	const high = Math.ceil(position);
	return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

export const median = (samples: readonly number[]) => quantile(samples, 0.5);
export const p90 = (samples: readonly number[]) => quantile(samples, 0.9);

export function ms(value: number): string {
	return value >= 100 ? `${value.toFixed(0)} ms` : value >= 10 ? `${value.toFixed(1)} ms` : `${value.toFixed(2)} ms`;
}

export type Row = {
	readonly measure: string;
	readonly floor: string;
	readonly median: string;
	readonly p90: string;
	readonly ratio: string;
	readonly goal: string;
	readonly verdict: 'met' | 'missed' | '–';
};

export function markdownTable(rows: readonly Row[]): string {
	return [
		'| measure | floor (median) | kloud median | kloud p90 | ratio | goal | |',
		'| --- | --- | --- | --- | --- | --- | --- |',
		...rows.map(row => `| ${row.measure} | ${row.floor} | ${row.median} | ${row.p90} | ${row.ratio} | ${row.goal} | ${row.verdict} |`),
	].join('\n');
}
