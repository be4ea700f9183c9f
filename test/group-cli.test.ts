import {describe, expect, it} from 'vitest';
import {parseCliArgs, UsageError} from '../source/cli/args.js';
import {planGroupCommand} from '../source/cli/group.js';

const plan = (...argv: string[]) => {
	const {rest, flags} = parseCliArgs(argv, {});
	return planGroupCommand(rest, flags, {});
};

// parseCliArgs takes `group` as the command; planGroupCommand gets the rest.
const planOf = (line: string) => {
	const {command, rest, flags} = parseCliArgs(line.split(' '), {});
	expect(command).toBe('group');
	return planGroupCommand(rest, flags, {});
};

describe('kloud-tui group: arguments to a plan', () => {
	it.each([
		['group list', {kind: 'list'}],
		['group show web', {kind: 'show', name: 'web'}],
		['group delete web', {kind: 'delete', name: 'web'}],
		['group scale web 5', {kind: 'scale', name: 'web', size: 5}],
		['group scale web --size 0', {kind: 'scale', name: 'web', size: 0}],
	])('%s', (line, expected) => {
		expect(planOf(line)).toEqual(expected);
	});

	it('create: defaults (min 0, max the size, no health check, graces) and every option', () => {
		expect(planOf('group create web --image demo --size 3')).toEqual({
			kind: 'create',
			draft: {name: 'web', image: 'demo', size: 3, min: 0, max: 3, health: {kind: 'none'}, healthGraceSeconds: 90, hostGraceSeconds: 15},
		});
		expect(planOf('group create web --image demo --size 2 --min 1 --max 4 --memory 128 --cpus 2 --network none --restart no --health console:^tick --health-grace 20 --host-grace 5')).toEqual({
			kind: 'create',
			draft: {
				name: 'web',
				image: 'demo',
				size: 2,
				min: 1,
				max: 4,
				memoryMb: 128,
				cpus: 2,
				network: 'none',
				restart: 'no',
				health: {kind: 'console', pattern: '^tick'},
				healthGraceSeconds: 20,
				hostGraceSeconds: 5,
			},
		});
	});

	it.each([
		['group', /needs a command/],
		['group grow web', /unknown group command "grow"/],
		['group show', /needs a group name/],
		['group show Web!', /invalid group name/],
		['group create web --size 3', /needs --image/],
		['group create web --image demo', /needs --size/],
		['group create web --image demo --size 6 --max 5', /within --min 0 and --max 5/],
		['group create web --image demo --size 1 --min 2', /within --min 2/],
		['group create web --image demo --size 1.5', /invalid --size 1.5/],
		['group create web --image demo --size 1 --health tcp:22', /expected none or console:REGEX/],
		['group create web --image demo --size 1 --health console:(', /invalid health check/],
		['group create web --image ../etc --size 1', /invalid image name/],
		['group create web --image demo --size 1 --restart sometimes', /invalid restart policy/],
		['group create web --image demo --size 1 --host-grace 0', /invalid --host-grace 0/],
		['group scale web', /needs the new size/],
		['group scale web 2.5', /invalid --size 2.5/],
	])('%s → usage error', (line, message) => {
		expect(() => plan(...line.split(' '))).toThrow(UsageError);
		expect(() => plan(...line.split(' '))).toThrow(message);
	});
});
