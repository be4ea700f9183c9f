/**
 * What the TUI needs from the broker's side (amqplib, zod, the feed, the console), loaded only
 * after its first frame: the entry of `dist/bin/tui-broker.cjs` (see scripts/bundle.mjs), and what
 * cli/run-tui.ts imports instead when run from tsc's output.
 */
export {attachConsole} from './cli/console-attach.js';
export {startFeed} from './feed.js';
export {connectOperator} from './operator.js';
export {watchGroups} from './group-feed.js';
