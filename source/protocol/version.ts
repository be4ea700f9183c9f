/** The protocol version every kloud message carries in its `v` field. */
export const PROTOCOL_VERSION = 1;
