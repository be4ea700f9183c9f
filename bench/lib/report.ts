/** BENCHMARKS.md in sections a partial run (`BENCH_ONLY=…`) can replace without touching the rest. */
const begin = (name: string) => `<!-- ${name}:begin -->`;
const end = (name: string) => `<!-- ${name}:end -->`;

/** `section` wrapped in its markers. */
export function markSection(name: string, section: string): string {
	return `${begin(name)}\n${section.trimEnd()}\n${end(name)}\n`;
}

/**
 * `document` with section `name` replaced by `section`; a section not there yet goes before the
 * first line starting with `before` (the hand-written reading), else at the end.
 */
export function spliceSection(document: string, name: string, section: string, before: string): string {
	const marked = markSection(name, section);
	const from = document.indexOf(begin(name));
	const to = document.indexOf(end(name));
	if (from !== -1 && to > from) {
		return `${document.slice(0, from)}${marked}${document.slice(to + end(name).length).replace(/^\n/, '')}`;
	}

	const at = document.split('\n').findIndex(line => line.startsWith(before));
	if (at === -1) {
		return `${document.trimEnd()}\n\n${marked}`;
	}

	const lines = document.split('\n');
	return `${lines.slice(0, at).join('\n').trimEnd()}\n\n${marked}\n${lines.slice(at).join('\n')}`;
}
