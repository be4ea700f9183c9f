// zod's `locales` namespace as kloud-tui's bundle carries it: English only (scripts/bundle.mjs).
export {default as en} from 'zod/v4/locales/en.js';
