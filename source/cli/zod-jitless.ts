/**
 * Imported before any schema is built, in a one-shot subcommand only: zod compiles a fast path for
 * each object schema (`new Function`) on its first parse, which pays off over many parses (the TUI,
 * the agent) but costs a process that parses a handful of messages more than it saves.
 */
import {z} from 'zod';

z.config({jitless: true});
