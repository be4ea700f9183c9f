/**
 * Feeds the fleet store from the broker: a list round every `refreshMs` (never two at once), the
 * agents' pushed events in between, connection changes, and a clock tick; and carries out the
 * TUI's actions. The one place where the TUI meets the broker.
 */
import type {KloudClient} from './broker/client.js';
import {VmListCache} from './broker/list-cache.js';
import {drainCommand} from './commands.js';
import {imageRows} from './format.js';
import type {Vm} from './protocol/index.js';
import type {FleetStore} from './state/store.js';
import type {FleetActions, StartRequest} from './ui/actions.js';
import type {Target} from './state/view.js';

export type Feed = FleetActions & {close(): void};

export function startFeed(client: KloudClient, store: FleetStore, options: {readonly refreshMs: number; readonly roundTimeoutMs?: number}): Feed {
	// Hosts whose VMs did not change since the last round answer without them (rounds never overlap, as the cache needs).
	const cache = new VmListCache();
	let isRoundRunning = false;
	let isStopped = false;
	const roundTimeoutMs = options.roundTimeoutMs ?? Math.min(2000, Math.max(500, options.refreshMs));

	const round = async () => {
		if (isRoundRunning || isStopped || !client.connection.isConnected) {
			return;
		}

		isRoundRunning = true;
		try {
			const result = await client.list({timeoutMs: roundTimeoutMs, cache});
			if (!isStopped) {
				store.dispatch({type: 'round', at: Date.now(), snapshots: result.replies, missing: result.missing});
			}
		} catch {
			// The connection banner tells the story; the next round retries.
		} finally {
			isRoundRunning = false;
		}
	};

	const offEvent = client.onEvent(event => store.dispatch({type: 'kloud', at: Date.now(), event}));
	const offState = client.onConnectionState(state => {
		store.dispatch({
			type: 'connection',
			connection:
				state.status === 'disconnected'
					? {status: 'disconnected', error: state.error, retryAt: state.retryAt}
					: state.status === 'connected'
						? {status: 'connected', broker: state.broker}
						: {status: state.status},
		});
		if (state.status === 'connected') {
			void round();
		}
	});
	const broker = client.connection.broker;
	store.dispatch({type: 'connection', connection: client.connection.isConnected ? {status: 'connected', ...(broker === undefined ? {} : {broker})} : {status: 'connecting'}});
	const roundTimer = setInterval(() => void round(), options.refreshMs);
	const tickTimer = setInterval(() => store.dispatch({type: 'tick', now: Date.now()}), 1000);
	void round();

	// A request's answer is shown at once, as its event would show it (which may come later, or never to a tenant).
	const showLocally = (type: 'vm.started' | 'vm.stopped' | 'vm.rebooted' | 'vm.deleted', vm: Vm): Vm => {
		const at = Date.now();
		store.dispatch({type: 'kloud', at, event: {v: 1, id: 'local', from: vm.host, ts: at, type, body: {vm}}});
		return vm;
	};

	const timeoutMs = 10_000;
	return {
		refresh: () => void round(),
		async images() {
			const result = await client.images({timeoutMs: roundTimeoutMs});
			return imageRows(result.replies).map(row => ({name: row.name, hosts: row.hosts}));
		},
		async start(request: StartRequest) {
			const vm = await client.start(request, {timeoutMs: 30_000});
			return showLocally('vm.started', vm);
		},
		async stop(target: Target, options: {readonly isKill: boolean}) {
			const vm = await client.stop(target.id, {host: target.host, kill: options.isKill, timeoutMs});
			return showLocally('vm.stopped', vm);
		},
		async boot(target: Target) {
			const vm = await client.boot(target.id, {host: target.host, timeoutMs: 30_000});
			return showLocally('vm.started', vm);
		},
		async reboot(target: Target, options: {readonly isHard: boolean}) {
			const vm = await client.reboot(target.id, {host: target.host, hard: options.isHard, timeoutMs});
			return showLocally('vm.rebooted', vm);
		},
		async delete(target: Target) {
			const vm = await client.delete(target.id, {host: target.host, timeoutMs});
			return showLocally('vm.deleted', vm);
		},
		async consoleTail(target: Target) {
			const tail = await client.console(target.id, {host: target.host, bytes: 16 * 1024, timeoutMs});
			return tail.data;
		},
		async migrate(target: Target, to: string) {
			// A migration copies the disk and the RAM: minutes for a big guest on a slow link.
			const result = await client.migrate(target.id, {host: target.host, to, timeoutMs: 600_000});
			showLocally('vm.started', result.vm);
			void round();
			return result;
		},
		async cordon(host: string, options: {readonly cordoned: boolean}) {
			const status = await client.cordon(host, {cordoned: options.cordoned, timeoutMs});
			const at = Date.now();
			store.dispatch({type: 'kloud', at, event: {v: 1, id: 'local', from: host, ts: at, type: 'host.heartbeat', body: status}});
			return status;
		},
		async drain(host: string, onProgress: (line: string) => void) {
			const output = await drainCommand(client, host, {json: false, timeoutMs: 600_000, onProgress});
			void round();
			return output.stdout;
		},
		close() {
			isStopped = true;
			clearInterval(roundTimer);
			clearInterval(tickTimer);
			offEvent();
			offState();
		},
	};
}
