/** Capped logs: when a log rotates, what it keeps, and where the last N bytes are found (pure, table-driven). */
import {describe, expect, it} from 'vitest';
import {logMaxBytes, rotationDecision, tailPlan} from '../agent/log-cap.js';

const MIB = 1024 * 1024;

describe('rotationDecision', () => {
	const cases = [
		{what: 'an empty log', size: 0, maxBytes: MIB, expected: {kind: 'keep'}},
		{what: 'under half the cap', size: MIB / 2 - 1, maxBytes: MIB, expected: {kind: 'keep'}},
		{what: 'at half the cap: keeps all of it', size: MIB / 2, maxBytes: MIB, expected: {kind: 'rotate', keepBytes: MIB / 2}},
		{what: 'past half the cap: keeps half', size: MIB / 2 + 10, maxBytes: MIB, expected: {kind: 'rotate', keepBytes: MIB / 2}},
		{what: 'a 20 GB log from before the cap: keeps half', size: 20e9, maxBytes: MIB, expected: {kind: 'rotate', keepBytes: MIB / 2}},
		{what: 'an odd cap rounds the half down', size: 300, maxBytes: 301, expected: {kind: 'rotate', keepBytes: 150}},
	] as const;
	for (const {what, size, maxBytes, expected} of cases) {
		it(what, () => {
			expect(rotationDecision(size, maxBytes)).toEqual(expected);
		});
	}

	it('after a rotation the two files hold at most the cap, until the next check', () => {
		for (const size of [MIB / 2, MIB, 5 * MIB]) {
			const decision = rotationDecision(size, MIB);
			expect(decision.kind).toBe('rotate');
			// `.1` holds keepBytes, the log is empty; it grows to at most half before it rotates again.
			expect(decision.kind === 'rotate' && decision.keepBytes + MIB / 2 - 1).toBeLessThanOrEqual(MIB);
		}
	});
});

describe('tailPlan', () => {
	const cases = [
		{what: 'no files', current: 0, rotated: 0, bytes: 100, expected: {rotated: {offset: 0, length: 0}, current: {offset: 0, length: 0}}},
		{what: 'the log alone holds enough', current: 1000, rotated: 500, bytes: 100, expected: {rotated: {offset: 500, length: 0}, current: {offset: 900, length: 100}}},
		{what: 'exactly the log', current: 100, rotated: 500, bytes: 100, expected: {rotated: {offset: 500, length: 0}, current: {offset: 0, length: 100}}},
		{what: 'across the rotation: the end of .1, then all of the log', current: 30, rotated: 500, bytes: 100, expected: {rotated: {offset: 430, length: 70}, current: {offset: 0, length: 30}}},
		{what: 'just rotated: the log is empty', current: 0, rotated: 500, bytes: 100, expected: {rotated: {offset: 400, length: 100}, current: {offset: 0, length: 0}}},
		{what: 'more asked than both hold', current: 30, rotated: 50, bytes: 100, expected: {rotated: {offset: 0, length: 50}, current: {offset: 0, length: 30}}},
		{what: 'never rotated', current: 30, rotated: 0, bytes: 100, expected: {rotated: {offset: 0, length: 0}, current: {offset: 0, length: 30}}},
	] as const;
	for (const {what, current, rotated, bytes, expected} of cases) {
		it(what, () => {
			expect(tailPlan(current, rotated, bytes)).toEqual(expected);
		});
	}
});

describe('logMaxBytes', () => {
	const cases = [
		{flag: '--console-log-max', mib: 1, expected: {ok: true, bytes: MIB}},
		{flag: '--console-log-max', mib: 0.25, expected: {ok: true, bytes: MIB / 4}},
		{flag: '--dnsmasq-log-max', mib: 2.5, expected: {ok: true, bytes: 2.5 * MIB}},
	] as const;
	for (const {flag, mib, expected} of cases) {
		it(`${flag} ${mib}`, () => {
			expect(logMaxBytes(flag, mib)).toEqual(expected);
		});
	}

	for (const mib of [0, 0.1, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
		it(`refuses ${mib}`, () => {
			const result = logMaxBytes('--console-log-max', mib);
			expect(result.ok).toBe(false);
			expect(!result.ok && result.reason).toMatch(/^invalid --console-log-max .*≥ 0\.25/);
		});
	}
});
