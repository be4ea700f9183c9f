/**
 * Live migration of a private-network VM between two hosts as network namespaces joined by a veth
 * underlay (as the network test builds them): the migration goes over the underlay addresses
 * (QEMU runs in each host's namespace), the destination makes the VM's TAP on its private bridge,
 * the source removes its own. The guest counts on its console every 100 ms and counts on without
 * a reboot, with the same MAC and uptime going on; it is listed with the same IP at once (the
 * destination's dnsmasq took its lease over), and a VM left on the first host pinging it every
 * 200 ms keeps getting answers across the move (the packets lost are reported).
 */
import {readFile, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {createCloud, waitFor, type AgentHandle, type Cloud} from '../helpers/cloud.js';
import {linkDemoImage} from '../helpers/demo-image.js';
import {createLab, missingNetworkTools, sh, type Lab} from '../helpers/netns.js';

type Vm = {id: string; host: string; state: string; pid: number | null; mac: string | null; network?: string; ip?: string | null; uptimeSeconds?: number | null};

const UNDERLAY_A = '192.0.2.1';
const UNDERLAY_B = '192.0.2.2';
const USER_DATA = `#!/bin/sh
( i=0; while :; do i=$((i+1)); echo "COUNT $i"; sleep 0.1; done ) > /dev/console 2>&1 < /dev/null &
`;
/** A VM that pings `ip` every 200 ms for ever, each answer a \`seq=N\` line on its console. */
const pingUserData = (ip: string) => `#!/bin/sh
( ping -i 0.2 ${ip} ) > /dev/console 2>&1 < /dev/null &
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

	it('moves over the underlay while a VM on the first host pings it: same IP at once, same MAC, it counts on, uptime goes on', async () => {
		const userData = join(cloud.dir, 'count.sh');
		await writeFile(userData, USER_DATA);
		const vm = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--host', 'mn-a', '--user-data', userData]);
		expect(vm.network).toBe('private');
		await waitFor(async () => counts(await consoleOf(hostA, vm.id)).length >= 10, 120_000, 'the guest to count');
		expect(await links(netA)).toContain(vm.id);
		const listed = async (): Promise<Vm[]> => (await cloud.cliJson<{vms: Vm[]}>(['list'])).vms.filter(entry => entry.id === vm.id);
		let ip: string | null = null;
		await waitFor(async () => {
			ip = (await listed())[0]?.ip ?? null;
			return ip !== null;
		}, 60_000, 'the guest\'s address');

		// A second VM on mn-a pings it every 200 ms, before, during and after the move.
		const pingScript = join(cloud.dir, 'ping.sh');
		await writeFile(pingScript, pingUserData(ip!));
		const pinger = await cloud.cliJson<Vm>(['start', '--image', 'demo', '--host', 'mn-a', '--user-data', pingScript]);
		const answered = async (): Promise<number[]> => [...(await consoleOf(hostA, pinger.id)).matchAll(/ seq=(\d+) ttl=/g)].map(match => Number(match[1]));
		await waitFor(async () => (await answered()).length >= 5, 120_000, 'the pinger on mn-a to get answers');

		const [onA] = await listed();
		const countBefore = counts(await consoleOf(hostA, vm.id)).at(-1)!;
		const seqBefore = (await answered()).at(-1)!;
		const result = await cloud.cliJson<{vm: Vm; downtimeMs: number; totalMs: number}>(['migrate', vm.id, '--to', 'mn-b']);
		// Listed on mn-b only, at once with the address it had (the destination's dnsmasq holds its lease) and its uptime going on.
		const after = await listed();
		expect(after.map(entry => `${entry.host}:${entry.state}:${entry.ip}`)).toEqual([`mn-b:running:${ip}`]);
		expect(result.vm).toMatchObject({id: vm.id, host: 'mn-b', state: 'running', mac: vm.mac, network: 'private', ip});
		expect(after[0]!.uptimeSeconds!).toBeGreaterThanOrEqual(onA!.uptimeSeconds!);
		const leasesB = await readFile(join(hostB.stateDir, 'network', 'dnsmasq.leases'), 'utf8');
		expect(leasesB).toMatch(new RegExp(`^\\d+ ${vm.mac} ${ip!.replaceAll('.', '\\.')} `, 'm'));
		expect(await readFile(join(hostA.stateDir, 'network', 'dnsmasq.leases'), 'utf8')).not.toContain(vm.mac);

		expect(hostB.logs()).toContain(`"address":"${UNDERLAY_B}"`);
		expect(await links(netB)).toContain(vm.id);
		expect(await links(netA)).not.toContain(vm.id);
		await waitFor(async () => counts(await consoleOf(hostB, vm.id)).length >= 10, 60_000, 'the guest to count on mn-b');
		const onB = counts(await consoleOf(hostB, vm.id));
		expect(onB[0]).toBeGreaterThan(countBefore);
		expect(onB.every((count, index) => index === 0 || count === onB[index - 1]! + 1)).toBe(true);
		expect(await consoleOf(hostB, vm.id)).not.toContain('KLOUD-READY');

		// The pinger on mn-a: answers go on after the move (over VXLAN now); what was lost around it is reported.
		const seqAfterMove = (await answered()).at(-1)!;
		await waitFor(async () => (await answered()).at(-1)! >= seqAfterMove + 25, 60_000, 'the pinger to get answers from mn-b');
		const seen = new Set((await answered()).filter(seq => seq > seqBefore));
		const last = Math.max(...seen);
		const lost = last - seqBefore - seen.size;
		console.info(`ping from a VM on mn-a across the move: ${last - seqBefore} sent every 200 ms, ${lost} lost (migration ${result.totalMs} ms, guest paused ${result.downtimeMs} ms)`);
		expect(lost).toBeLessThan((last - seqBefore) / 2);

		// The address keeps working from the new host's side too (its TAP's guard there lets it send from it).
		const ping = await lab.exec(netB, 'ping', ['-c', '5', '-i', '0.2', '-w', '20', ip!]);
		expect(ping).toMatch(/[1-9] received/);
	}, 400_000);
});
