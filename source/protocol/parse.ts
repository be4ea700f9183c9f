/** Decoding at the edge: bytes in, a checked message or a clear one-line error out. */
import type {z} from 'zod';
import {PROTOCOL_VERSION} from './version.js';
import {
	MAX_MESSAGE_BYTES,
	consoleFrameSchema,
	eventSchema,
	replySchema,
	replyValueSchemas,
	requestSchema,
	type ConsoleFrame,
	type ErrorCode,
	type KloudEvent,
	type Reply,
	type ReplyValue,
	type Request,
	type RequestType,
} from './messages.js';

export type Result<T, E = string> = {readonly ok: true; readonly value: T} | {readonly ok: false; readonly error: E};

export type ParseFailure = {readonly code: ErrorCode; readonly reason: string};

function describe(error: z.ZodError): string {
	const issue = error.issues[0];
	if (!issue) {
		return 'invalid message';
	}

	const path = issue.path.join('.');
	return path && !issue.message.includes(path.split('.').at(-1) ?? '') ? `${path}: ${issue.message}` : issue.message;
}

function decodeJson(raw: Uint8Array | string): Result<unknown, ParseFailure> {
	const size = typeof raw === 'string' ? raw.length : raw.byteLength;
	if (size > MAX_MESSAGE_BYTES) {
		return {ok: false, error: {code: 'bad_request', reason: `message too large: ${size} bytes (limit ${MAX_MESSAGE_BYTES})`}};
	}

	const text = typeof raw === 'string' ? raw : new TextDecoder().decode(raw);
	try {
		return {ok: true, value: JSON.parse(text) as unknown};
	} catch (error) {
		return {ok: false, error: {code: 'bad_request', reason: `malformed JSON: ${(error as Error).message}`}};
	}
}

function checkVersion(value: unknown): ParseFailure | undefined {
	if (typeof value !== 'object' || value === null || Array.isArray(value)) {
		return {code: 'bad_request', reason: 'message must be a JSON object'};
	}

	const {v} = value as {v?: unknown};
	if (v !== PROTOCOL_VERSION) {
		return {
			code: 'unsupported_version',
			reason: `unsupported protocol version ${JSON.stringify(v ?? null)} (this side speaks ${PROTOCOL_VERSION})`,
		};
	}

	return undefined;
}

function parseWith<T>(raw: Uint8Array | string, schema: z.ZodType<T>): Result<T, ParseFailure> {
	const json = decodeJson(raw);
	if (!json.ok) {
		return json;
	}

	const versionError = checkVersion(json.value);
	if (versionError) {
		return {ok: false, error: versionError};
	}

	const parsed = schema.safeParse(json.value);
	if (!parsed.success) {
		const type = (json.value as {type?: unknown}).type;
		const reason = describe(parsed.error);
		return {ok: false, error: {code: 'bad_request', reason: typeof type === 'string' ? `${type}: ${reason}` : reason}};
	}

	return {ok: true, value: parsed.data};
}

export function parseRequest(raw: Uint8Array | string): Result<Request, ParseFailure> {
	return parseWith(raw, requestSchema);
}

export function parseEvent(raw: Uint8Array | string): Result<KloudEvent, ParseFailure> {
	return parseWith(raw, eventSchema);
}

export function parseConsoleFrame(raw: Uint8Array | string): Result<ConsoleFrame, ParseFailure> {
	return parseWith(raw, consoleFrameSchema);
}

export function parseReply(raw: Uint8Array | string): Result<Reply, ParseFailure> {
	return parseWith(raw, replySchema);
}

/** Checks a successful reply's value against what the request type promises. */
export function parseReplyValue<T extends RequestType>(type: T, value: unknown): Result<ReplyValue<T>, ParseFailure> {
	const parsed = replyValueSchemas[type].safeParse(value);
	return parsed.success
		? {ok: true, value: parsed.data as ReplyValue<T>}
		: {ok: false, error: {code: 'bad_request', reason: `malformed ${type} reply: ${describe(parsed.error)}`}};
}
