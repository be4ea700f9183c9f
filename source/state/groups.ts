/**
 * The groups view's model, pure: per group its spec (desired size, min, max, image, health check)
 * and its members as the fleet shows them: running, and healthy (running on a host that answers;
 * a console health check is the controller's to judge).
 */
import type {StoredGroup, Vm} from '../protocol/index.js';
import {parseMemberToken} from '../protocol/member-token.js';
import {hostHealth, type FleetState, type GroupView} from './fleet.js';
import {filterableBy, type FieldGetters} from './filter.js';
import {groupBy} from './group-by.js';

export type GroupRow = {
	readonly name: string;
	readonly image: string;
	readonly desired: number;
	readonly min: number;
	readonly max: number;
	readonly members: number;
	readonly running: number;
	readonly healthy: number;
	readonly health: string;
	readonly hosts: readonly string[];
	readonly group: GroupView;
};

/** The controller's last scaling on load and why (`StoredGroup.lastScaling`, from controllers that scale on load). */
export type ScalingOnLoad = {readonly from: number; readonly to: number; readonly cpuPercent: number; readonly members: number; readonly reason: string; readonly at: number};

/** Read loosely: groups streams written before scaling on load have no such record. */
export function scalingOf(stored: StoredGroup): ScalingOnLoad | undefined {
	const scaling = stored.lastScaling;
	return scaling === undefined ? undefined : {from: scaling.from, to: scaling.to, cpuPercent: scaling.cpuPercent, members: scaling.members, reason: scaling.reason, at: scaling.at};
}

/** `none`, `console:REGEX`, `tcp:PORT`: a group's health check as the CLI writes it. */
function describeHealth(health: StoredGroup['spec']['health']): string {
	const check = health as {readonly kind: string; readonly pattern?: string; readonly port?: number};
	return check.pattern === undefined ? (check.port === undefined ? check.kind : `${check.kind}:${check.port}`) : `${check.kind}:${check.pattern}`;
}

export function groupRows(fleet: Pick<FleetState, 'groups' | 'vms' | 'hosts' | 'now'>): GroupRow[] {
	const members = groupBy(fleet.groups.size === 0 ? [] : fleet.vms.values(), vm => {
		const tag = parseMemberToken(vm.clientToken);
		return tag && fleet.groups.get(tag.group)?.stored.spec.uid === tag.uid ? tag.group : undefined;
	});

	return [...fleet.groups.values()]
		.sort((a, b) => a.stored.spec.name.localeCompare(b.stored.spec.name))
		.map(group => {
			const {spec} = group.stored;
			const vms = members.get(spec.name) ?? [];
			const running = vms.filter(vm => vm.state === 'running');
			const isUp = (vm: Vm) => {
				const host = fleet.hosts.get(vm.host);
				return host !== undefined && hostHealth(host, fleet.now) === 'up';
			};

			return {
				name: spec.name,
				image: spec.image,
				desired: spec.size,
				min: spec.min,
				max: spec.max,
				members: vms.length,
				running: running.length,
				healthy: running.filter(vm => isUp(vm)).length,
				health: describeHealth(spec.health),
				hosts: [...new Set(vms.map(vm => vm.host))].sort(),
				group,
			};
		});
}

const GROUP_FIELDS: FieldGetters<GroupRow> = {
	group: row => row.name,
	image: row => row.image,
	host: row => row.hosts,
};

export const GROUP_FILTER_FIELDS = Object.keys(GROUP_FIELDS);

export const filterableGroup = filterableBy(GROUP_FIELDS, row => [row.name, row.image, row.health, ...row.hosts].join('\u0000'));
