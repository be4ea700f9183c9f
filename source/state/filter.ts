/**
 * The `/` filter's language, pure: whitespace-separated terms, all of which must match (AND).
 * `field:value` compares one field of a row (case-insensitive, whole value, `*` matches any run of
 * characters: `host:host-*`); any other term is a substring of the row's text. A word before `:`
 * that names no field of the screen is matched as text and reported, so a typo never filters
 * silently (`stat:crashed` says "unknown field stat (fields: state, host, …)").
 */

export type FilterTerm = {readonly field: string; readonly pattern: RegExp} | {readonly field: null; readonly text: string};

export type ParsedFilter = {
	readonly terms: readonly FilterTerm[];
	/** Words written as fields that the screen does not have. */
	readonly unknownFields: readonly string[];
};

/** What a filter can read of one row: a field's values (a VM has one state, a host many images), and all of its text. */
export type Filterable = {
	readonly field: (name: string) => string | readonly string[] | undefined;
	/** All of the row's text (asked only when a free-text term needs it). */
	readonly text: () => string;
};

const FIELD_TERM = /^([a-z]+):(.*)$/i;

function globPattern(value: string): RegExp {
	const escaped = value.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
	return new RegExp(`^${escaped}$`, 'i');
}

/** Cuts `text` into terms against the fields the screen has. */
export function parseFilter(text: string, fields: readonly string[]): ParsedFilter {
	const terms: FilterTerm[] = [];
	const unknownFields: string[] = [];
	for (const word of text.trim().split(/\s+/)) {
		if (word === '') {
			continue;
		}

		const match = FIELD_TERM.exec(word);
		const name = match?.[1]?.toLowerCase();
		if (match && name !== undefined && fields.includes(name)) {
			terms.push({field: name, pattern: globPattern(match[2] ?? '')});
			continue;
		}

		if (name !== undefined && !unknownFields.includes(name)) {
			unknownFields.push(name);
		}

		terms.push({field: null, text: word.toLowerCase()});
	}

	return {terms, unknownFields};
}

/** Whether one row passes every term. */
export function matchesFilter(filter: ParsedFilter, row: Filterable): boolean {
	return filter.terms.every(term => {
		if (term.field === null) {
			return row.text().toLowerCase().includes(term.text);
		}

		const value = row.field(term.field);
		const values = value === undefined ? [] : typeof value === 'string' ? [value] : value;
		return values.some(one => term.pattern.test(one));
	});
}

/** The hint shown under a filter naming fields the screen lacks; undefined when there is none. */
export function filterHint(filter: ParsedFilter, fields: readonly string[]): string | undefined {
	if (filter.unknownFields.length === 0) {
		return undefined;
	}

	const names = filter.unknownFields.join(', ');
	return `unknown field${filter.unknownFields.length > 1 ? 's' : ''} ${names} (matched as text); fields here: ${fields.join(', ')}`;
}

/** Rows passing `text`, in their order. */
export function filterRows<T>(rows: Iterable<T>, text: string, fields: readonly string[], describe: (row: T) => Filterable): T[] {
	const filter = parseFilter(text, fields);
	const kept: T[] = [];
	for (const row of rows) {
		if (filter.terms.length === 0 || matchesFilter(filter, describe(row))) {
			kept.push(row);
		}
	}

	return kept;
}

/** A row's fields by name: what `field:value` compares (one value, or several: a host's images). */
export type FieldGetters<T> = Readonly<Record<string, (row: T) => string | readonly string[]>>;

/** Describes rows to the filter by their named fields and their text. */
export function filterableBy<T>(fields: FieldGetters<T>, text: (row: T) => string): (row: T) => Filterable {
	return row => ({
		field: name => (Object.hasOwn(fields, name) ? fields[name]!(row) : undefined),
		text: () => text(row),
	});
}
