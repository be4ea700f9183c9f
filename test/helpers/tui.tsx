/** Ink test helpers: a fleet from fixtures, fake fleet actions that record calls, and frame polling. */
import {render} from 'ink-testing-library';
import type {HostSnapshot, HostStatus, MigrationResult, Vm} from '../../source/protocol/index.js';
import {FleetStore} from '../../source/state/store.js';
import type {ImageChoice, Target} from '../../source/state/view.js';
import type {FleetActions, StartRequest} from '../../source/ui/actions.js';
import {App} from '../../source/ui/app.js';

export const KEYS = {
	up: '\u001B[A',
	down: '\u001B[B',
	right: '\u001B[C',
	left: '\u001B[D',
	pageUp: '\u001B[5~',
	pageDown: '\u001B[6~',
	enter: '\r',
	escape: '\u001B',
	tab: '\t',
	backspace: '\u007F',
	ctrlC: '\u0003',
} as const;

export const NOW = 1_800_000_000_000;

export function makeVm(id: string, host: string, patch: Partial<Vm> = {}): Vm {
	return {id, host, image: 'demo', state: 'running', memoryMb: 256, cpus: 1, pid: 100, createdAt: NOW - 60_000, uptimeSeconds: 60, ip: null, mac: null, exit: null, ...patch};
}

export function hostStatus(id: string, vmCount = 0, patch: Partial<HostStatus> = {}): HostStatus {
	return {id, vmCount, maxVms: 16, freeMemoryMb: 1000, totalMemoryMb: 2000, accel: 'tcg', images: ['demo'], heartbeatMs: 5000, startedAt: NOW - 3_600_000, ...patch};
}

export function snapshot(host: string, vms: readonly Vm[], roster: readonly string[] = [host], patch: Partial<HostStatus> = {}): HostSnapshot {
	return {host: hostStatus(host, vms.length, patch), vms: [...vms], roster: [...roster]};
}

export class FakeActions implements FleetActions {
	readonly calls: string[] = [];
	imageChoices: ImageChoice[] = [
		{name: 'alpine', hosts: ['host-a']},
		{name: 'demo', hosts: ['host-a', 'host-b']},
	];

	failStop: string | undefined;
	/** A migration fails with this reason (the VM stays where it is). */
	failMigrate: string | undefined;
	/** Holds migrations until resolved (to see their progress). */
	migrationGate: Promise<void> | undefined;
	/** What a drain says as it goes, and whether it then fails. */
	drainLines: string[] = [];
	failDrain: string | undefined;
	consoleText = 'Booting...\r\nKLOUD-READY hostname=vm ip=10.0.0.5\r\n';
	readonly #store: FleetStore;

	constructor(store: FleetStore) {
		this.#store = store;
	}

	refresh(): void {
		this.calls.push('refresh');
	}

	async images(): Promise<ImageChoice[]> {
		this.calls.push('images');
		return this.imageChoices;
	}

	async start(request: StartRequest): Promise<Vm> {
		this.calls.push(`start ${JSON.stringify(request)}`);
		const vm = makeVm('vm-newnewnw', request.host ?? 'host-a', {image: request.image, memoryMb: request.memoryMb ?? 256, cpus: request.cpus ?? 1, createdAt: NOW});
		this.#store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: vm.host, ts: NOW, type: 'vm.started', body: {vm}}});
		return vm;
	}

	async stop(target: Target, options: {readonly isKill: boolean}): Promise<Vm> {
		this.calls.push(`${options.isKill ? 'kill' : 'stop'} ${target.id}@${target.host}`);
		if (this.failStop === target.id) {
			throw new Error(`no VM ${target.id} on host ${target.host}`);
		}

		const vm = makeVm(target.id, target.host, {state: 'stopped', pid: null, exit: options.isKill ? 'killed' : 'powered off'});
		this.#store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: vm.host, ts: NOW, type: 'vm.stopped', body: {vm}}});
		return vm;
	}

	async boot(target: Target): Promise<Vm> {
		this.calls.push(`boot ${target.id}@${target.host}`);
		return this.#announce('vm.started', makeVm(target.id, target.host, {state: 'running', uptimeSeconds: 0}));
	}

	async reboot(target: Target, options: {readonly isHard: boolean}): Promise<Vm> {
		this.calls.push(`${options.isHard ? 'hard-reboot' : 'reboot'} ${target.id}@${target.host}`);
		return this.#announce('vm.rebooted', makeVm(target.id, target.host, {uptimeSeconds: 0}));
	}

	async delete(target: Target): Promise<Vm> {
		this.calls.push(`delete ${target.id}@${target.host}`);
		return this.#announce('vm.deleted', makeVm(target.id, target.host, {state: 'deleted', pid: null}));
	}

	#announce(type: 'vm.started' | 'vm.rebooted' | 'vm.deleted', vm: Vm): Vm {
		this.#store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: vm.host, ts: NOW, type, body: {vm}}});
		return vm;
	}

	async consoleTail(target: Target): Promise<string> {
		this.calls.push(`console ${target.id}`);
		return this.consoleText;
	}

	async migrate(target: Target, to: string): Promise<MigrationResult> {
		this.calls.push(`migrate ${target.id}@${target.host} to ${to}`);
		await this.migrationGate;
		if (this.failMigrate !== undefined) {
			throw new Error(this.failMigrate);
		}

		const vm = this.#store.getState().vms.get(target.id) ?? makeVm(target.id, target.host);
		const moved = this.#announce('vm.started', {...vm, host: to});
		return {vm: moved, from: target.host, totalMs: 4200, downtimeMs: 31, ramMs: 3000};
	}

	async cordon(host: string, options: {readonly cordoned: boolean}): Promise<HostStatus> {
		this.calls.push(`${options.cordoned ? 'cordon' : 'uncordon'} ${host}`);
		const known = this.#store.getState().hosts.get(host)?.status ?? hostStatus(host);
		const status = {...known, cordoned: options.cordoned};
		this.#store.dispatch({type: 'kloud', at: NOW, event: {v: 1, id: 'e', from: host, ts: NOW, type: 'host.heartbeat', body: status}});
		return status;
	}

	async drain(host: string, onProgress: (line: string) => void): Promise<string> {
		this.calls.push(`drain ${host}`);
		await this.cordon(host, {cordoned: true});
		for (const line of this.drainLines) {
			onProgress(line);
			await new Promise(resolve => setTimeout(resolve, 20));
		}

		if (this.failDrain !== undefined) {
			throw new Error(this.failDrain);
		}

		return `drained ${host}: ${this.drainLines.length} VMs moved, host cordoned`;
	}
}

export function renderTui(snapshots: readonly HostSnapshot[] = [], missing: readonly string[] = [], options: {readonly consoleFollowMs?: number} = {}) {
	const store = new FleetStore(NOW);
	store.dispatch({type: 'connection', connection: {status: 'connected'}});
	if (snapshots.length > 0 || missing.length > 0) {
		store.dispatch({type: 'round', at: NOW, snapshots, missing});
	}

	const actions = new FakeActions(store);
	const instance = render(<App store={store} actions={actions} info={{brokerUrl: 'amqp://guest:***@127.0.0.1:5672', namespace: 'kloud', refreshMs: 2000}} {...options} />);
	const frame = () => instance.lastFrame() ?? '';
	const press = async (...keys: string[]) => {
		for (const key of keys) {
			instance.stdin.write(key);
			// Let Ink's input handling and React's render run before the next key.
			await new Promise(resolve => setTimeout(resolve, 15));
		}
	};

	const waitFor = async (predicate: (frame: string) => boolean, what = 'the frame'): Promise<string> => {
		const deadline = Date.now() + 2000;
		while (!predicate(frame())) {
			if (Date.now() > deadline) {
				throw new Error(`timed out waiting for ${what}; last frame:\n${frame()}`);
			}

			await new Promise(resolve => setTimeout(resolve, 10));
		}

		return frame();
	};

	const resize = (columns: number) => {
		Object.defineProperty(instance.stdout, 'columns', {value: columns, configurable: true});
		instance.stdout.emit('resize');
	};

	/** The rows of the table (lines that carry a VM id), without the gutter. */
	const tableLines = () => frame().split('\n').filter(line => /^[ *][ ›].*vm-[a-z]{8}/.test(line));
	return {store, actions, instance, frame, press, waitFor, resize, tableLines};
}
