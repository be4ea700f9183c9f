/**
 * Orders names the way `localeCompare` does (ICU's root collation) without loading ICU's collator,
 * which costs a CLI run ≈ 6 ms the first time anything is compared. Host ids, VM ids and image names
 * use only letters, digits, `_`, `-` and `.`: for those, the order is by character (`_` < `-` < `.` <
 * digits < letters, letters ignoring case), a shorter name before a longer one that starts the same,
 * and only then lowercase before uppercase from the left. Any other name goes to `localeCompare`.
 */
const SIMPLE = /^[\w.-]*$/;

function primary(code: number): number {
	if (code === 95) {
		return 0; // _
	}

	if (code === 45) {
		return 1; // -
	}

	if (code === 46) {
		return 2; // .
	}

	if (code <= 57) {
		return code - 48 + 3; // 0-9
	}

	return (code | 32) - 97 + 13; // a-z, A-Z
}

const isUpper = (code: number) => code >= 65 && code <= 90;

export function compareNames(a: string, b: string): number {
	if (!SIMPLE.test(a) || !SIMPLE.test(b)) {
		return a.localeCompare(b);
	}

	const length = Math.min(a.length, b.length);
	for (let index = 0; index < length; index++) {
		const difference = primary(a.charCodeAt(index)) - primary(b.charCodeAt(index));
		if (difference !== 0) {
			return Math.sign(difference);
		}
	}

	if (a.length !== b.length) {
		return a.length < b.length ? -1 : 1;
	}

	for (let index = 0; index < length; index++) {
		const upperA = isUpper(a.charCodeAt(index));
		if (upperA !== isUpper(b.charCodeAt(index))) {
			return upperA ? 1 : -1;
		}
	}

	return 0;
}
