/** Building messages: every one gets the protocol version, an id, its sender and a timestamp. */
import {PROTOCOL_VERSION} from './version.js';
import type {ErrorCode, KloudEvent, Reply, Request} from './messages.js';

type Envelope = 'v' | 'id' | 'from' | 'ts';
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export type RequestDraft = DistributiveOmit<Request, Envelope>;
export type EventDraft = DistributiveOmit<KloudEvent, Envelope>;

export type Stamp = {readonly id: string; readonly from: string; readonly ts: number};

export function makeRequest(draft: RequestDraft, stamp: Stamp): Request {
	return {v: PROTOCOL_VERSION, ...stamp, ...draft} as Request;
}

export function makeEvent(draft: EventDraft, stamp: Stamp): KloudEvent {
	return {v: PROTOCOL_VERSION, ...stamp, ...draft} as KloudEvent;
}

export function okReply(re: string, value: unknown, stamp: Stamp): Reply {
	return {v: PROTOCOL_VERSION, ...stamp, type: 'reply', re, ok: true, value};
}

export function errorReply(re: string, code: ErrorCode, reason: string, stamp: Stamp): Reply {
	return {v: PROTOCOL_VERSION, ...stamp, type: 'reply', re, ok: false, code, reason};
}

export function encode(message: Request | KloudEvent | Reply | unknown): Uint8Array {
	return new TextEncoder().encode(JSON.stringify(message));
}
