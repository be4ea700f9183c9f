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

/** A measure against its floor from the same run: ratio of medians, met when ≤ `goal`. */
export function ratioRow(measure: string, floor: readonly number[] | number, samples: readonly number[], goal: number, goalText: string): Row {
	const floorMedian = typeof floor === 'number' ? floor : median(floor);
	const ratio = median(samples) / floorMedian;
	return {measure, floor: ms(floorMedian), median: ms(median(samples)), p90: ms(p90(samples)), ratio: `${ratio.toFixed(2)}×`, goal: goalText, verdict: ratio <= goal ? 'met' : 'missed'};
}

/** kloud against its peer, the same operation through each: samples of both, or why there are none. */
export type PeerRow = {
	readonly measure: string;
	readonly kloud: readonly number[];
	readonly peer: readonly number[];
	/** Met when median(kloud) / median(peer) ≤ this. */
	readonly goal?: number;
	readonly goalText?: string;
	/** Instead of figures: why this row has none yet. */
	readonly missing?: string;
};

export function peerTable(rows: readonly PeerRow[], names: {readonly kloud: string; readonly peer: string}): string {
	return [
		`| measure | ${names.kloud} median | p90 | ${names.peer} median | p90 | ratio kloud/peer | goal | |`,
		'| --- | --- | --- | --- | --- | --- | --- | --- |',
		...rows.map(row => {
			if (row.missing !== undefined) {
				return `| ${row.measure} | – | – | – | – | – | ${row.goalText ?? '–'} | ${row.missing} |`;
			}

			const ratio = median(row.kloud) / median(row.peer);
			const verdict = row.goal === undefined ? '–' : ratio <= row.goal ? 'met' : 'missed';
			return `| ${row.measure} | ${ms(median(row.kloud))} | ${ms(p90(row.kloud))} | ${ms(median(row.peer))} | ${ms(p90(row.peer))} | ${ratio.toFixed(2)}× | ${row.goalText ?? '–'} | ${verdict} |`;
		}),
	].join('\n');
}
