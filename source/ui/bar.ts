/** Text bars for "used of budget": `███···` plus the figures, or `-` where the budget is unknown. */

/** `width` cells, the used share filled (a little use shows as one cell, never as none). */
export function bar(used: number, budget: number | null, width: number): string {
	if (budget === null || budget <= 0) {
		return '-'.padEnd(width);
	}

	const share = Math.max(0, Math.min(1, used / budget));
	const filled = used > 0 ? Math.max(1, Math.round(share * width)) : 0;
	return '█'.repeat(filled) + '·'.repeat(width - filled);
}

/** "512M", "1.5G" */
export function megabytes(mb: number): string {
	return mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 === 0 ? 0 : 1)}G` : `${Math.round(mb)}M`;
}
