import {describe, expect, it} from 'vitest';
import {compareNames} from '../source/compare-names.js';

/** A small deterministic generator: the same cases on every run. */
function* names(seed: number, count: number): Generator<string> {
	const alphabet = '_-.0129aAbByZ';
	let state = seed;
	const next = () => {
		state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
		return state;
	};

	for (let index = 0; index < count; index++) {
		const length = next() % 6;
		yield Array.from({length}, () => alphabet[next() % alphabet.length]).join('');
	}
}

describe('compareNames', () => {
	it.each([
		['a', 'A', -1],
		['A', 'a_b', -1],
		['a_b', 'a-b', -1],
		['a-b', 'a.b', -1],
		['a.b', 'a0', -1],
		['a9', 'ab', -1],
		['aB', 'Ab', -1],
		['host-10', 'host-9', -1],
		['bench-00', 'bench-00', 0],
		['zeta', 'Éclair', 1],
	])('%s against %s: %i, as localeCompare', (a, b, sign) => {
		expect(Math.sign(compareNames(a, b))).toBe(sign);
		expect(Math.sign(a.localeCompare(b))).toBe(sign);
	});

	it('orders 20,000 random pairs of id-like names exactly as localeCompare does', () => {
		const left = [...names(7, 20_000)];
		const right = [...names(11, 20_000)];
		const differing = left.map((a, index) => [a, right[index]!] as const).filter(([a, b]) => Math.sign(compareNames(a, b)) !== Math.sign(a.localeCompare(b)));
		expect(differing).toEqual([]);
	});
});
