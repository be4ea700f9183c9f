/**
 * Imported first by the binaries, before any library reads the environment.
 *
 * - React's development build records a performance measure for every component render, several
 *   times the cost of the render itself. Operators get the production build.
 * - Ink (through is-in-ci, read once at import) renders nothing but the last frame when `CI` or
 *   `CONTINUOUS_INTEGRATION` is set, which leaves an interactive TUI blank until it quits. A terminal
 *   on stdout is interactive, whatever the environment says.
 */
process.env.NODE_ENV ??= 'production';
if (process.stdout.isTTY) {
	delete process.env.CI;
	delete process.env.CONTINUOUS_INTEGRATION;
}
