/**
 * The entry of `dist/bin/subcommands.cjs`, the bundle a subcommand runs from (see code-cache.ts):
 * zod is told not to compile its fast paths before the protocol's schemas are built.
 */
import './zod-jitless.js';

export {runCli} from './run.js';
