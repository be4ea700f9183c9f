/**
 * The member token that tags a VM with its group, slot and generation (protocol/groups.ts): a file
 * of its own, without zod, since the TUI's first frame shows each VM's group.
 */
import type {Vm} from './messages.js';

/** What a member's client token says. */
export type MemberTag = {readonly group: string; readonly uid: string; readonly version: number; readonly slot: number; readonly gen: number};

const MEMBER_TOKEN_PATTERN = /^grp:([a-z][a-z\d-]{0,23}):([a-z\d]{8}):(\d{1,15}):(\d{1,4}):(\d{1,6})$/;

export function memberToken(tag: MemberTag): string {
	return `grp:${tag.group}:${tag.uid}:${tag.version}:${tag.slot}:${tag.gen}`;
}

export function parseMemberToken(token: string | null | undefined): MemberTag | undefined {
	const match = token ? MEMBER_TOKEN_PATTERN.exec(token) : null;
	if (!match) {
		return undefined;
	}

	return {group: match[1]!, uid: match[2]!, version: Number(match[3]), slot: Number(match[4]), gen: Number(match[5])};
}

/** The group a VM belongs to, if it is a member of one. */
export function groupOfVm(vm: Pick<Vm, 'clientToken'>): string | undefined {
	return parseMemberToken(vm.clientToken)?.group;
}
