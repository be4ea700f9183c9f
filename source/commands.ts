/** The scriptable subcommands: each takes a connected client and returns what to print. */
import type {KloudClient} from './broker/client.js';
import {KloudRequestError} from './broker/client.js';
import {describeDisk, describeState, formatHosts, formatImages, formatVms, hostRows, imageRows, sortVms} from './format.js';
import {oneCopyPerVm, type StartBody, type Vm} from './protocol/index.js';

export type Output = {readonly stdout: string; readonly stderr?: string};

export type CommonOptions = {readonly json: boolean; readonly timeoutMs: number};

function missingNote(missing: readonly string[]): string | undefined {
	return missing.length > 0 ? `warning: no answer from ${missing.join(', ')}` : undefined;
}

function requireAnswers(count: number, missing: readonly string[], timeoutMs: number): void {
	if (count === 0) {
		const silent = missing.length > 0 ? ` (known hosts: ${missing.join(', ')})` : '';
		throw new KloudRequestError('no_hosts', `no host answered within ${(timeoutMs / 1000).toFixed(1)} s${silent}`);
	}
}

export async function listCommand(client: KloudClient, options: CommonOptions): Promise<Output> {
	const round = await client.list({timeoutMs: options.timeoutMs});
	requireAnswers(round.replies.length, round.missing, options.timeoutMs);
	// A VM mid-handover is listed by both hosts: one row, the destination's.
	const vms = sortVms(oneCopyPerVm(round.replies.flatMap(snapshot => snapshot.vms)));
	const hosts = hostRows(round.replies, round.missing);
	return options.json
		? {stdout: JSON.stringify({vms, hosts, durationMs: Math.round(round.durationMs * 10) / 10})}
		: {stdout: formatVms(vms), stderr: missingNote(round.missing)};
}

export async function hostsCommand(client: KloudClient, options: CommonOptions): Promise<Output> {
	const round = await client.list({timeoutMs: options.timeoutMs});
	requireAnswers(round.replies.length, round.missing, options.timeoutMs);
	const hosts = hostRows(round.replies, round.missing);
	return options.json ? {stdout: JSON.stringify(hosts)} : {stdout: formatHosts(hosts)};
}

export async function imagesCommand(client: KloudClient, options: CommonOptions): Promise<Output> {
	const round = await client.images({timeoutMs: options.timeoutMs});
	requireAnswers(round.replies.length, round.missing, options.timeoutMs);
	const rows = imageRows(round.replies);
	return options.json ? {stdout: JSON.stringify(rows)} : {stdout: formatImages(rows), stderr: missingNote(round.missing)};
}

export async function startCommand(client: KloudClient, body: StartBody, options: CommonOptions): Promise<Output> {
	const vm = await client.start(body, {timeoutMs: options.timeoutMs});
	const network = vm.network === undefined ? '' : `, network ${vm.network}${vm.mac ? ` ${vm.mac}` : ''}`;
	return options.json ? {stdout: JSON.stringify(vm)} : {stdout: `started ${vm.id} on ${vm.host} (image ${vm.image}, ${vm.memoryMb}M, ${vm.cpus} cpu${network})`};
}

export async function migrateCommand(client: KloudClient, vmId: string, migrate: {readonly host?: string; readonly to?: string}, options: CommonOptions): Promise<Output> {
	const result = await client.migrate(vmId, {...migrate, timeoutMs: options.timeoutMs});
	return options.json
		? {stdout: JSON.stringify(result)}
		: {stdout: `migrated ${result.vm.id} from ${result.from} to ${result.vm.host} in ${(result.totalMs / 1000).toFixed(1)} s (guest paused ${result.downtimeMs} ms)`};
}

export async function cordonCommand(client: KloudClient, host: string, cordoned: boolean, options: CommonOptions): Promise<Output> {
	const status = await client.cordon(host, {cordoned, timeoutMs: options.timeoutMs});
	return options.json ? {stdout: JSON.stringify(status)} : {stdout: `${cordoned ? 'cordoned' : 'uncordoned'} ${status.id} (${status.vmCount} VMs)`};
}

/**
 * Empties a host for maintenance: cordons it, then migrates its running VMs away one at a time,
 * each to the host with the most room. A VM that does not move is named, and the command fails.
 */
export async function drainCommand(client: KloudClient, host: string, options: CommonOptions & {readonly onProgress?: (line: string) => void}): Promise<Output> {
	await client.cordon(host, {cordoned: true, timeoutMs: Math.min(options.timeoutMs, 10_000)});
	const round = await client.list({timeoutMs: 5000});
	const snapshot = round.replies.find(reply => reply.host.id === host);
	if (!snapshot) {
		throw new KloudRequestError('host_unreachable', `host ${host} did not answer its VM list`);
	}

	const vms = sortVms(snapshot.vms);
	const results: Array<{vmId: string; ok: boolean; to?: string; reason?: string; totalMs?: number; downtimeMs?: number}> = [];
	const lines: string[] = [];
	for (const vm of vms) {
		if (vm.state !== 'running') {
			lines.push(`left ${vm.id}: it is ${vm.state} (only running VMs migrate; delete it or boot it elsewhere)`);
			results.push({vmId: vm.id, ok: false, reason: `it is ${vm.state}`});
			continue;
		}

		try {
			// eslint-disable-next-line no-await-in-loop
			const moved = await client.migrate(vm.id, {host, timeoutMs: options.timeoutMs});
			const line = `migrated ${vm.id} to ${moved.vm.host} in ${(moved.totalMs / 1000).toFixed(1)} s (guest paused ${moved.downtimeMs} ms)`;
			lines.push(line);
			options.onProgress?.(line);
			results.push({vmId: vm.id, ok: true, to: moved.vm.host, totalMs: moved.totalMs, downtimeMs: moved.downtimeMs});
		} catch (error) {
			const line = `could not migrate ${vm.id}: ${(error as Error).message}`;
			lines.push(line);
			options.onProgress?.(line);
			results.push({vmId: vm.id, ok: false, reason: (error as Error).message});
		}
	}

	const failed = results.filter(result => !result.ok);
	if (failed.length > 0) {
		throw new KloudRequestError('migrate_failed', `host ${host} is cordoned but not empty: ${failed.length} of ${results.length} VMs stay\n${lines.join('\n')}`);
	}

	// Each VM's line went to stderr as it moved (onProgress).
	return options.json ? {stdout: JSON.stringify({host, cordoned: true, migrated: results})} : {stdout: `drained ${host}: ${results.length} VMs moved, host cordoned`};
}

export async function stopCommand(
	client: KloudClient,
	vmId: string,
	stop: {readonly kill: boolean; readonly host?: string; readonly graceSeconds?: number},
	options: CommonOptions,
): Promise<Output> {
	const vm = await client.stop(vmId, {...stop, timeoutMs: options.timeoutMs});
	return options.json ? {stdout: JSON.stringify(vm)} : {stdout: `${stop.kill ? 'killed' : 'stopped'} ${vm.id} on ${vm.host} (${vm.exit ?? 'done'})`};
}

/** `start VM_ID` / `boot VM_ID`: a stopped VM runs again on its host, with its id, MAC, disk and seed. */
export async function bootCommand(client: KloudClient, vmId: string, boot: {readonly host?: string}, options: CommonOptions): Promise<Output> {
	const vm = await client.boot(vmId, {...boot, timeoutMs: options.timeoutMs});
	return options.json ? {stdout: JSON.stringify(vm)} : {stdout: `booted ${vm.id} on ${vm.host} (${describeState(vm)}${vm.mac ? `, MAC ${vm.mac}` : ''})`};
}

export async function rebootCommand(client: KloudClient, vmId: string, reboot: {readonly host?: string; readonly hard: boolean}, options: CommonOptions): Promise<Output> {
	const vm = await client.reboot(vmId, {...reboot, timeoutMs: options.timeoutMs});
	return options.json ? {stdout: JSON.stringify(vm)} : {stdout: `rebooted ${vm.id} on ${vm.host} (${reboot.hard ? 'hard reset' : 'ACPI reboot'})`};
}

/** What deleting `vm` loses, named for the operator who must confirm it. */
export function deleteQuestion(vm: Vm): string {
	const disk = vm.disk ? ` (${describeDisk(vm)} used)` : '';
	const ip = vm.ip ? ` and IP ${vm.ip}` : ' and IP lease';
	return `delete ${vm.id} on ${vm.host} (${describeState(vm)}): its disk${disk}, user-data seed${ip} are lost for good`;
}

/**
 * `delete VM_ID`: with `confirm` (a terminal and no --yes) the VM is looked up first and the
 * operator asked, naming what is lost; a no sends nothing.
 */
export async function deleteCommand(
	client: KloudClient,
	vmId: string,
	remove: {readonly host?: string; readonly graceSeconds?: number; readonly confirm?: (question: string) => Promise<boolean>},
	options: CommonOptions,
): Promise<Output> {
	let {host} = remove;
	if (remove.confirm) {
		const vm = await client.findVm(vmId, options.timeoutMs);
		if (host !== undefined && vm.host !== host) {
			throw new KloudRequestError('unknown_vm', `${vmId} is on ${vm.host}, not ${host}`);
		}

		if (!(await remove.confirm(deleteQuestion(vm)))) {
			return options.json ? {stdout: JSON.stringify({deleted: false, vm})} : {stdout: `kept ${vm.id} (not deleted)`};
		}

		host = vm.host;
	}

	const vm = await client.delete(vmId, {timeoutMs: options.timeoutMs, ...(host === undefined ? {} : {host}), ...(remove.graceSeconds === undefined ? {} : {graceSeconds: remove.graceSeconds})});
	return options.json ? {stdout: JSON.stringify(vm)} : {stdout: `deleted ${vm.id} on ${vm.host} (disk, seed, TAP and lease removed)`};
}

export async function consoleCommand(client: KloudClient, vmId: string, options: CommonOptions & {readonly bytes?: number; readonly host?: string}): Promise<Output> {
	const tail = await client.console(vmId, {timeoutMs: options.timeoutMs, bytes: options.bytes, host: options.host});
	return options.json ? {stdout: JSON.stringify(tail)} : {stdout: tail.data.replace(/\r\n/g, '\n').replace(/\n$/, '')};
}
