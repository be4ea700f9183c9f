/**
 * Live migration of a private-network VM between two hosts as network namespaces joined by a veth
 * underlay (as the network test builds them): the migration goes over the underlay addresses
 * (QEMU runs in each host's namespace), the destination makes the VM's TAP on its private bridge,
 * the source removes its own; the guest counts on without a reboot, with the same MAC.
 * (Its IP and a ping across the move are not checked here yet.)
 */
import {readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {createLab, missingNetworkTools, sh, type Lab} from '../helpers/netns.js';

type Vm = {id: string; host: string; state: string; pid: number | null; mac: string | null; network?: string};

const UNDERLAY_A = '192.0.2.1';
const UNDERLAY_B = '192.0.2.2';
const USER_DATA = `#!/bin/sh
( i=0; while :; do i=$((i+1)); echo "COUNT $i"; sleep 0.1; done ) > /dev/console 2>&1 < /dev/null &
`;
const missing = await missingNetworkTools();
let lab: Lab;
let cloud: Cloud;
let hostA: AgentHandle;
let hostB: AgentHandle;
let netA = '';
let netB = '';

function counts(text: string): number[] {
	return [...text.matchAll(/^COUNT (\d+)\r?$/gm)].map(match => Number(match[1]));
}

async function consoleOf(agent: AgentHandle, id: string): Promise<string> {
	return readFile(join(agent.stateDir, id, 'console.log'), 'utf8').catch(() => '');
}

async function links(netns: string): Promise<string[]> {
	return JSON.parse(await sh('ip', ['-n', netns, '-j', 'link', 'show'])).map((link: {ifname: string}) => link.ifname);
}

describe.skipIf(missing.length > 0)('live migration of a private VM across two hosts (namespaces)', () => {
	beforeAll(async () => {
		lab = createLab();
		cloud = await createCloud('mignet');
		await linkDemoImage(cloud.imagesDir);
		netA = await lab.addNamespace('a');
		netB = await lab.addNamespace('b');
		await lab.link({netns: netA, name: 'ul0', address: `${UNDERLAY_A}/24`}, {netns: netB, name: 'ul0', address: `${UNDERLAY_B}/24`});
		[hostA, hostB] = await Promise.all([
			cloud.startAgent('mn-a', ['--netns', netA, '--underlay', UNDERLAY_A, '--private-slot', '0', '--network-default', 'private', '--memory', '128']),
			cloud.startAgent('mn-b', ['--netns', netB, '--underlay', UNDERLAY_B, '--private-slot', '1', '--network-default', 'private', '--memory', '128']),
		]);
		await waitFor(async () => (await cloud.cliJson<unknown[]>(['hosts'])).length === 2, 10_000, 'both hosts in the roster');
	}, 240_000);

	afterAll(async () => {
		await cloud?.cleanup();
		await lab?.cleanup();
	}, 60_000);

	it('moves over the underlay: TAP made on the destination, removed at the source; it counts on; same MAC', async () => {
		const userData = join(cloud.dir, 'count.sh');
		await (await import('node:fs/promises')).writeFile(userData, USER_DATA);
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--host', 'mn-a', '--user-data', userData]);
		expect(vm.network).toBe('private');
		await waitFor(async () => counts(await consoleOf(hostA, vm.id)).length >= 10, 120_000, 'the guest to count');
		expect(await links(netA)).toContain(vm.id);
		let ip: string | null = null;
		await waitFor(async () => {
			ip = (await cloud.cliJson<{vms: Array<{id: string; ip: string | null}>}>(['list'])).vms.find(entry => entry.id === vm.id)?.ip ?? null;
			return ip !== null;
		}, 60_000, 'the guest\'s address');
		await lab.exec(netA, 'ping', ['-c', '2', '-W', '2', ip!]);
		const before = counts(await consoleOf(hostA, vm.id)).at(-1)!;

		const result = await cloud.cliJson<{vm: Vm; downtimeMs: number; totalMs: number}>(['migrate', vm.id, '--to', 'mn-b']);
		expect(result.vm).toMatchObject({id: vm.id, host: 'mn-b', state: 'running', mac: vm.mac, network: 'private'});
		expect(hostB.logs()).toContain(`"address":"${UNDERLAY_B}"`);
		expect(await links(netB)).toContain(vm.id);
		expect(await links(netA)).not.toContain(vm.id);
		await waitFor(async () => counts(await consoleOf(hostB, vm.id)).length >= 10, 60_000, 'the guest to count on mn-b');
		const onB = counts(await consoleOf(hostB, vm.id));
		expect(onB[0]).toBeGreaterThan(before);
		expect(await consoleOf(hostB, vm.id)).not.toContain('KLOUD-READY');
		// Same address, answered from its new host (the TAP's guard there lets it send from it).
		const ping = await lab.exec(netB, 'ping', ['-c', '20', '-i', '0.5', '-w', '30', ip!]).catch((error: unknown) => String((error as {stdout?: string}).stdout ?? error));
		console.info(`ping from mn-b after the move: ${/\d+ packets transmitted, \d+ received/.exec(ping)?.[0] ?? ping}`);
		expect(ping).toMatch(/[1-9]\d* received/);
		console.info(`private migration: ${JSON.stringify({totalMs: result.totalMs, downtimeMs: result.downtimeMs})}`);
	}, 300_000);
});
