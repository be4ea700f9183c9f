/** The agent's audit records (agent/audit.ts): who asked for what, on which VM, how it ended. */
import {describe, expect, it} from 'vitest';
import {auditRecord} from '../agent/audit.js';
import {eventSchema, type Request} from '../source/protocol/index.js';
import {makeVm} from './helpers/tui.js';

const request = (type: Request['type'], body: object): Request => ({v: 1, id: 'r', from: 'kloud-tui@alice', ts: 1, type, body}) as Request;

describe('auditRecord', () => {
	it.each([
		['a start, with its image and the VM it made', request('vm.start', {image: 'demo'}), {ok: true, value: makeVm('vm-aaaaaaaa', 'host-a')}, {request: 'vm.start', vmId: 'vm-aaaaaaaa', detail: 'demo', ok: true}],
		['a group member\'s start', request('vm.start', {image: 'demo', clientToken: 'grp:web:abcd1234:3:1:0'}), {ok: false, code: 'no_capacity', reason: 'host host-a is full'}, {request: 'vm.start', detail: 'demo', group: 'web', ok: false, code: 'no_capacity', reason: 'host host-a is full'}],
		['a refused stop', request('vm.stop', {vmId: 'vm-bbbbbbbb'}), {ok: false, code: 'forbidden', reason: 'not yours'}, {request: 'vm.stop', vmId: 'vm-bbbbbbbb', ok: false, code: 'forbidden'}],
		['a migration, with where the VM went', request('vm.migrate', {vmId: 'vm-cccccccc'}), {ok: true, value: {vm: makeVm('vm-cccccccc', 'host-b'), from: 'host-a', totalMs: 1, downtimeMs: 1, ramMs: 1}}, {request: 'vm.migrate', vmId: 'vm-cccccccc', detail: 'to host-b', ok: true}],
		['a cordon', request('host.cordon', {cordoned: true}), {ok: true, value: {}}, {request: 'host.cordon', detail: 'on', ok: true}],
	] as const)('%s', (_name, asked, result, expected) => {
		const record = auditRecord(asked, result, {user: 'alice', sender: 'kloud-tui@alice', durationMs: 12.4});
		expect(record).toMatchObject({user: 'alice', sender: 'kloud-tui@alice', durationMs: 12, ...expected});
		// What the agent publishes parses as the event every client reads.
		expect(eventSchema.safeParse({v: 1, id: 'e', from: 'host-a', ts: 1, type: 'request.handled', body: record}).success).toBe(true);
	});

	it('reports nothing for reads, agent-to-agent steps and starts put back for another host', () => {
		expect(auditRecord(request('vm.list', {}), {ok: true, value: {}}, {user: 'alice', durationMs: 1})).toBeUndefined();
		expect(auditRecord(request('vm.console', {vmId: 'vm-aaaaaaaa'}), {ok: true, value: {}}, {user: 'alice', durationMs: 1})).toBeUndefined();
		expect(auditRecord(request('vm.migrate.commit', {vmId: 'vm-aaaaaaaa', from: 'host-a'}), {ok: true, value: {}}, {user: 'agent', durationMs: 1})).toBeUndefined();
		expect(auditRecord(request('vm.start', {image: 'demo'}), {ok: 'requeue'}, {user: 'alice', durationMs: 1})).toBeUndefined();
	});
});
