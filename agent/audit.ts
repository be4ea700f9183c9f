/**
 * The agent's audit records, pure: a handled request that changes something → the
 * `request.handled` event body (who, what, on which VM, how it ended). Requests that only read
 * (lists, consoles) and agent-to-agent migration steps are not reported.
 */
import type {HandlerResult} from '../source/broker/agent-endpoint.js';
import {AUDITED_REQUESTS, groupOfVm, vmSchema, type AuditedRequest, type Request, type RequestHandled} from '../source/protocol/index.js';

function isAudited(type: Request['type']): type is AuditedRequest {
	return (AUDITED_REQUESTS as readonly string[]).includes(type);
}

function detailOf(request: Request, value: unknown): string | undefined {
	switch (request.type) {
		case 'vm.start': {
			return request.body.image;
		}

		case 'vm.migrate': {
			const to = (value as {vm?: {host?: unknown}} | undefined)?.vm?.host;
			return typeof to === 'string' ? `to ${to}` : request.body.to === undefined ? undefined : `to ${request.body.to}`;
		}

		case 'host.cordon': {
			return request.body.cordoned ? 'on' : 'off';
		}

		default: {
			return undefined;
		}
	}
}

/** The audit record of `request`, answered with `result`; undefined when it is not audited (or put back for another host). */
export function auditRecord(request: Request, result: HandlerResult, options: {readonly user: string | null; readonly sender?: string; readonly durationMs: number}): RequestHandled | undefined {
	if (!isAudited(request.type) || result.ok === 'requeue') {
		return undefined;
	}

	const value = result.ok ? result.value : undefined;
	const vm = vmSchema.safeParse(request.type === 'vm.migrate' ? (value as {vm?: unknown} | undefined)?.vm : value);
	const vmId = vm.success ? vm.data.id : 'vmId' in request.body ? request.body.vmId : undefined;
	const group = vm.success ? groupOfVm(vm.data) : request.type === 'vm.start' ? groupOfVm({clientToken: request.body.clientToken}) : undefined;
	const detail = detailOf(request, value);
	return {
		user: options.user,
		...(options.sender === undefined ? {} : {sender: options.sender.slice(0, 128)}),
		request: request.type,
		...(vmId === undefined ? {} : {vmId}),
		...(detail === undefined ? {} : {detail}),
		...(group === undefined ? {} : {group}),
		ok: result.ok,
		...(result.ok ? {} : {code: result.code, reason: result.reason.slice(0, 1000)}),
		durationMs: Math.max(0, Math.round(options.durationMs)),
	};
}
