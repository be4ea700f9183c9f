/** "3s", "4m", "2h": how long ago, compactly. */
export function formatAge(ms: number): string {
	const seconds = Math.max(0, Math.floor(ms / 1000));
	if (seconds < 60) {
		return `${seconds}s`;
	}

	if (seconds < 3600) {
		return `${Math.floor(seconds / 60)}m`;
	}

	return `${Math.floor(seconds / 3600)}h`;
}

export function fit(text: string, width: number, options: {readonly alignRight?: boolean} = {}): string {
	if (text.length > width) {
		return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
	}

	return options.alignRight ? text.padStart(width) : text.padEnd(width);
}
