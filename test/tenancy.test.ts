/** Tenancy decisions, pure: who the caller is, and whose VMs they may act on. */
import {describe, expect, it} from 'vitest';
import {callerOf, mayActOn} from '../agent/tenancy.js';

const tenants = {tenants: true, agentUser: 'kloud-agent', admins: ['ops']};

describe('callerOf', () => {
	it.each([
		['without tenants mode, anyone is an admin', 'alice', {...tenants, tenants: false}, {user: 'alice', isAdmin: true}],
		['without tenants mode, no user id is fine', undefined, {...tenants, tenants: false}, {user: null, isAdmin: true}],
		['tenants mode needs a user id', undefined, tenants, undefined],
		['a tenant is not an admin', 'alice', tenants, {user: 'alice', isAdmin: false}],
		['the agents\' own user is an admin', 'kloud-agent', tenants, {user: 'kloud-agent', isAdmin: true}],
		['a named admin is an admin', 'ops', tenants, {user: 'ops', isAdmin: true}],
	] as const)('%s', (_name, userId, config, expected) => {
		expect(callerOf(userId, config)).toEqual(expected);
	});
});

describe('mayActOn', () => {
	it.each([
		['a tenant on its own VM', {user: 'alice', isAdmin: false}, 'alice', true],
		['a tenant on another\'s VM', {user: 'alice', isAdmin: false}, 'bob', false],
		['a tenant on an owner-less VM (the admins\' alone)', {user: 'alice', isAdmin: false}, null, false],
		['a tenant on a VM the host does not know (answered unknown_vm by the request)', {user: 'alice', isAdmin: false}, undefined, true],
		['an admin on anyone\'s VM', {user: 'ops', isAdmin: true}, 'bob', true],
	] as const)('%s', (_name, caller, owner, expected) => {
		expect(mayActOn(caller, owner)).toBe(expected);
	});
});
