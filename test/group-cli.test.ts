import {describe, expect, it} from 'vitest';
import {parseCliArgs, UsageError} from '../source/cli/args.js';
import type {GroupStoreClient} from '../source/broker/group-store.js';
import {KloudRequestError, type KloudClient} from '../source/broker/client.js';
import {planGroupCommand} from '../source/cli/group.js';
import {groupDeleteCommand, groupUpdateCommand} from '../source/group-commands.js';
import {memberToken, type Vm} from '../source/protocol/index.js';

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
		['group delete web', {kind: 'delete', name: 'web', wait: false}],
		['group delete web --wait', {kind: 'delete', name: 'web', wait: true}],
		['group scale web 5', {kind: 'scale', name: 'web', size: 5}],
		['group scale web --size 0', {kind: 'scale', name: 'web', size: 0}],
	])('%s', (line, expected) => {
		expect(planOf(line)).toEqual(expected);
	});

	it('--wait goes with delete alone', () => {
		for (const line of ['group show web --wait', 'group scale web 2 --wait', 'group list --wait']) {
			expect(() => planOf(line), line).toThrow(new UsageError('--wait goes with group delete'));
		}
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

	it('create with a tcp health check that fails 15 s after its last pass (--unhealthy-after), the boot grace apart', () => {
		expect(planOf('group create web --image demo --size 1 --network private --health tcp:8080 --health-grace 120 --unhealthy-after 15')).toMatchObject({
			draft: {health: {kind: 'tcp', port: 8080}, healthGraceSeconds: 120, unhealthyAfterSeconds: 15},
		});
		expect(planOf('group update web --unhealthy-after 30')).toEqual({kind: 'update', name: 'web', patch: {unhealthyAfterSeconds: 30}});
	});

	it('create with a tcp health check and scaling on CPU: defaults (low mark half the high, step 1, 60 s window, 120 s cooldown, 60 s warm-up) and every option', () => {
		expect(planOf('group create web --image demo --size 1 --max 3 --network private --health tcp:8080 --scale-on cpu>70%')).toMatchObject({
			draft: {health: {kind: 'tcp', port: 8080}, scaleOn: {metric: 'cpu', highPercent: 70, lowPercent: 35, step: 1, windowSeconds: 60, cooldownSeconds: 120, warmupSeconds: 60}},
		});
		expect(planOf('group create web --image demo --size 1 --max 3 --scale-on cpu>40 --scale-low 10 --scale-step 2 --scale-window 6 --scale-cooldown 8 --scale-warmup 5')).toMatchObject({
			draft: {scaleOn: {metric: 'cpu', highPercent: 40, lowPercent: 10, step: 2, windowSeconds: 6, cooldownSeconds: 8, warmupSeconds: 5}},
		});
	});

	it('update: only what is given, scaling fields as a patch (merged with the current rule by the command), --scale-on none turns it off', () => {
		expect(planOf('group update web --image demo2 --memory 256 --max 6')).toEqual({kind: 'update', name: 'web', patch: {image: 'demo2', memoryMb: 256, max: 6}});
		expect(planOf('group update web --scale-cooldown 30')).toEqual({kind: 'update', name: 'web', patch: {scaleOn: {cooldownSeconds: 30}}});
		expect(planOf('group update web --scale-on cpu>50%')).toEqual({kind: 'update', name: 'web', patch: {scaleOn: {highPercent: 50}}});
		expect(planOf('group update web --scale-on none')).toEqual({kind: 'update', name: 'web', patch: {scaleOn: null}});
		expect(planOf('group update web --health none --size 2')).toEqual({kind: 'update', name: 'web', patch: {health: {kind: 'none'}, size: 2}});
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
		['group create web --image demo --size 1 --health tcp:22', /tcp:PORT health check needs network private or public/],
		['group create web --image demo --size 1 --health tcp:99999', /tcp:PORT needs a port from 1 to 65535/],
		['group create web --image demo --size 1 --health http:80', /expected none, console:REGEX or tcp:PORT/],
		['group create web --image demo --size 1 --scale-on mem>70%', /expected cpu>PERCENT/],
		['group create web --image demo --size 1 --scale-on cpu>70% --scale-low 80', /must be below the high mark 70%/],
		['group create web --image demo --size 1 --scale-window 10', /go with --scale-on cpu>PERCENT/],
		['group create web --image demo --size 1 --scale-on cpu>70% --scale-cooldown 1.5', /invalid --scale-cooldown 1.5/],
		['group create web --image demo --size 1 --scale-on cpu>70% --scale-step 0', /invalid --scale-step 0/],
		['group update web', /needs something to change/],
		['group update web --scale-on none --scale-low 5', /--scale-on none turns scaling off/],
		['group update web --health tcp:0', /tcp:PORT needs a port/],
		['group create web --image demo --size 1 --health console:(', /invalid health check/],
		['group create web --image ../etc --size 1', /invalid image name/],
		['group create web --image demo --size 1 --restart sometimes', /invalid restart policy/],
		['group create web --image demo --size 1 --host-grace 0', /invalid --host-grace 0/],
		['group create web --image demo --size 1 --unhealthy-after 20', /unhealthy-after needs a health check/],
		['group create web --image demo --size 1 --network private --health tcp:80 --unhealthy-after 9', /invalid --unhealthy-after 9: a whole number of seconds from 10 to 3600/],
		['group scale web', /needs the new size/],
		['group scale web 2.5', /invalid --size 2.5/],
	])('%s → usage error', (line, message) => {
		expect(() => plan(...line.split(' '))).toThrow(UsageError);
		expect(() => plan(...line.split(' '))).toThrow(message);
	});
});

describe('kloud-tui group delete --wait (over a fake store and client)', () => {
	const spec = {name: 'web', uid: 'a1b2c3d4', image: 'demo', size: 2, min: 0, max: 2, health: {kind: 'none' as const}, healthGraceSeconds: 90, hostGraceSeconds: 15};
	const member = (id: string, host: string, slot: number): Vm => ({
		id, host, image: 'demo', state: 'running', memoryMb: 64, cpus: 1, pid: 100, createdAt: 1, uptimeSeconds: 5, ip: null, mac: '52:54:00:00:00:01',
		exit: null, desired: 'running', restart: 'on-failure', restarts: {count: 0, limit: 5}, clientToken: memberToken({group: 'web', uid: 'a1b2c3d4', version: 1, slot, gen: 0}),
	});

	/** A fleet listing `rounds[i]` in its i-th list round (the last one from then on). */
	function fakes(rounds: Vm[][]) {
		const appended: unknown[] = [];
		let round = 0;
		const store = {
			async groups() {
				return new Map([['web', {spec, version: 1, by: null, ts: 0}]]);
			},
			async append(record: unknown) {
				appended.push(record);
			},
		} as unknown as GroupStoreClient;
		const client = {
			async list() {
				const vms = rounds[Math.min(round++, rounds.length - 1)]!;
				return {replies: [{host: {id: 'host-a'}, vms}], missing: []};
			},
		} as unknown as KloudClient;
		return {store, client, appended, rounds: () => round};
	}

	it('returns once no host lists a member, counting them', async () => {
		const {store, client, appended} = fakes([[member('vm-aaaaaaaa', 'host-a', 0), member('vm-bbbbbbbb', 'host-b', 1)], [member('vm-bbbbbbbb', 'host-b', 1)], []]);
		await expect(groupDeleteCommand(store, client, 'web', {json: false, timeoutMs: 10_000, wait: true})).resolves.toEqual({stdout: 'deleted group web and its 2 members'});
		expect(appended).toEqual([{kind: 'group.delete', name: 'web', uid: 'a1b2c3d4'}]);
	});

	it('past its time, names the members still there (e.g. on a host that is down)', async () => {
		const {store, client} = fakes([[member('vm-bbbbbbbb', 'host-b', 1)]]);
		await expect(groupDeleteCommand(store, client, 'web', {json: false, timeoutMs: 1200, wait: true})).rejects.toThrow(
			new KloudRequestError('timeout', 'deleted group web, but 1 of its members is still there after 1 s: vm-bbbbbbbb on host-b'),
		);
	});

	it('without --wait, returns at once and asks no host', async () => {
		const {store, client, rounds} = fakes([[member('vm-aaaaaaaa', 'host-a', 0)]]);
		await expect(groupDeleteCommand(store, client, 'web', {json: true, timeoutMs: 10_000, wait: false})).resolves.toEqual({stdout: '{"name":"web","deleted":true}'});
		expect(rounds()).toBe(0);
	});
});

describe('kloud-tui group update and --unhealthy-after (over a fake store)', () => {
	const tcpSpec = {name: 'web', uid: 'a1b2c3d4', image: 'demo', size: 1, min: 0, max: 1, network: 'private' as const, health: {kind: 'tcp' as const, port: 8080}, healthGraceSeconds: 90, unhealthyAfterSeconds: 20, hostGraceSeconds: 15};
	function storeOf(spec: object) {
		const appended: Array<{kind: string; spec: Record<string, unknown>}> = [];
		const store = {
			async groups() {
				return new Map([['web', {spec, version: 1, by: null, ts: 0}]]);
			},
			async append(record: {kind: string; spec: Record<string, unknown>}) {
				appended.push(record);
			},
		} as unknown as GroupStoreClient;
		return {store, appended};
	}

	it('turning the health check off drops its unhealthy-after (and says so)', async () => {
		const {store, appended} = storeOf(tcpSpec);
		const output = await groupUpdateCommand(store, 'web', {health: {kind: 'none'}}, {json: false, timeoutMs: 1000});
		expect(output.stdout).toMatch(/^updated group web: health, unhealthyAfterSeconds;/);
		expect(appended[0]!.spec).not.toHaveProperty('unhealthyAfterSeconds');
		expect(appended[0]!.spec.health).toEqual({kind: 'none'});
	});

	it('keeps it through other changes, and refuses it on a group without a check', async () => {
		const kept = storeOf(tcpSpec);
		await groupUpdateCommand(kept.store, 'web', {memoryMb: 256}, {json: false, timeoutMs: 1000});
		expect(kept.appended[0]!.spec).toMatchObject({unhealthyAfterSeconds: 20, memoryMb: 256});
		const {store, appended} = storeOf({...tcpSpec, network: undefined, health: {kind: 'none'}, unhealthyAfterSeconds: undefined});
		await expect(groupUpdateCommand(store, 'web', {unhealthyAfterSeconds: 30}, {json: false, timeoutMs: 1000})).rejects.toThrow(/unhealthy-after needs a health check/);
		expect(appended).toEqual([]);
	});
});
