/** Tenant names the permission recipe can express (its `{username}` goes unescaped into a regex and a routing key): table. */
import {describe, expect, it} from 'vitest';
import {tenantNameProblem} from '../agent/tenant-name.js';

describe('tenantNameProblem', () => {
	const accepted = ['alice', 'kloud-agent', 'guest', 'kt-a1b2c3-alice', 'ops_team', 'alice@example', 'A1', '_svc', 'x'.repeat(128)];
	for (const name of accepted) {
		it(`accepts ${name.length > 20 ? `${name.length} characters` : name}`, () => {
			expect(tenantNameProblem(name)).toBeUndefined();
		});
	}

	const refused = [
		{name: 'a.b', why: 'tenant "a" would bind vm.*.a.b.* (its pattern is vm\\.[^.]+\\.a\\..*)'},
		{name: 'a.*', why: 'a regex that matches every tenant\'s events'},
		{name: '.*', why: 'matches everything'},
		{name: 'bob|alice', why: 'an alternation'},
		{name: 'a+', why: 'a quantifier'},
		{name: '(x)', why: 'a group'},
		{name: 'a[b]', why: 'a class'},
		{name: 'a\\b', why: 'an escape'},
		{name: 'a$', why: 'an anchor'},
		{name: '^a', why: 'an anchor'},
		{name: 'a{2}', why: 'a repeat'},
		{name: 'a?', why: 'optional'},
		{name: '#', why: 'a topic wildcard'},
		{name: '*', why: 'a topic wildcard'},
		{name: '-', why: 'the owner key of VMs without an owner'},
		{name: '-x', why: 'starts with -'},
		{name: '@x', why: 'starts with @'},
		{name: '', why: 'empty'},
		{name: 'a b', why: 'a space'},
		{name: 'ålice', why: 'not ASCII'},
		{name: 'x'.repeat(129), why: 'too long for the routing key'},
	];
	for (const {name, why} of refused) {
		it(`refuses ${JSON.stringify(name.length > 20 ? `${name.length} characters` : name)}: ${why}`, () => {
			expect(tenantNameProblem(name)).toMatch(/cannot be a tenant: the permission recipe puts it unescaped into a regex and a routing key/);
		});
	}
});
