/** kloud's protocol: names, messages, parsing and encoding, shared by the agent, CLI and TUI. */
export * from './version.js';
export * from './names.js';
export * from './messages.js';
export * from './parse.js';
export * from './encode.js';
export * from './limits.js';
export * from './groups.js';
export * from './vm-copies.js';
export * from './host-room.js';
