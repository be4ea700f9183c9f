// Stands in for optional modules the kloud-tui bundle never loads (scripts/bundle.mjs).
export default {};
