/**
 * Tenant (RabbitMQ user) names the README's permission recipe can express. A VM's events are
 * routed `vm.<verb>.<owner>.<host>`, and the recipe lets a tenant bind
 * `vm\.[^.]+\.{username}\..*`, where the broker puts the user name into the regex unescaped: a
 * name with a `.` (`a.b` is seen by tenant `a`), a regex metacharacter (`.*`) or a topic wildcard
 * would let its holder read other tenants' events, or others read its. Pure.
 */
import {NO_OWNER_KEY} from '../source/protocol/index.js';

/** Letters, digits, `_`, `-` and `@`, starting with a letter, digit or `_`; at most 128. */
export const TENANT_NAME_PATTERN = /^[A-Za-z\d_][A-Za-z\d_@-]{0,127}$/;

/** Why `name` cannot be a user of a `--tenants` fleet, or undefined when it can. */
export function tenantNameProblem(name: string): string | undefined {
	if (TENANT_NAME_PATTERN.test(name) && name !== NO_OWNER_KEY) {
		return undefined;
	}

	return `user name ${JSON.stringify(name.slice(0, 140))} cannot be a tenant: the permission recipe puts it unescaped into a regex and a routing key, so only letters, digits, '_', '-' and '@' (at most 128, not starting with '-' or '@') keep tenants apart`;
}
