/**
 * The live VM table across every host. The fleet comes from an outside store (fed by list rounds
 * and pushed events); what the operator is doing lives in the view reducer; keys map onto both.
 */
import {Box, useApp, useInput, type Key} from 'ink';
import {useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore} from 'react';
import type {Vm, VmState} from '../protocol/index.js';
import type {FleetState} from '../state/fleet.js';
import type {FleetStore} from '../state/store.js';
import {fitColumns, tableRows, windowStart} from '../state/table.js';
import {tableKeyCommand} from '../state/table-keys.js';
import {
	actionTargets,
	initialView,
	cycleChoice,
	cycleStartNetwork,
	newStartDialog,
	START_NETWORKS,
	START_RESTARTS,
	selectedIndex,
	START_FIELDS,
	viewReducer,
	type ConfirmAction,
	type StartDialog as StartDialogState,
	type Target,
	type ViewState,
} from '../state/view.js';
import type {FeedInfo, FleetActions, StartRequest} from './actions.js';
import {ConfirmBar} from './confirm-bar.js';
import {DetailView, type ConsoleView} from './detail-view.js';
import {Footer} from './footer.js';
import {Header} from './header.js';
import {HelpView} from './help-view.js';
import {typedKeys} from './keys.js';
import {StartDialog} from './start-dialog.js';
import {useSyncReducer} from './use-sync-reducer.js';
import {useTerminalSize} from './use-terminal-size.js';
import {VmTable} from './vm-table.js';

export type AppProps = {
	readonly store: FleetStore;
	readonly actions: FleetActions;
	readonly info: FeedInfo;
	/** How often the detail view re-reads a running VM's console. */
	readonly consoleFollowMs?: number;
	/** `c`: the TUI steps aside for VM `vmId`'s live console (the App exits; its runner attaches, then renders it again). */
	readonly onConsole?: (vmId: string) => void;
};

/** States in which a VM's console can still grow. */
const LIVE_STATES: ReadonlySet<VmState> = new Set<VmState>(['starting', 'running', 'stopping']);

const HEADER_LINES = 2;
const FOOTER_LINES = 2;

/** The next choice after `current` that starts with `letter` (p: private, then public), never the default (''). */
function nextByLetter<T extends string>(choices: readonly T[], current: T, letter: string): T | undefined {
	const after = choices.indexOf(current) + 1;
	const ordered = [...choices.slice(after), ...choices.slice(0, after)];
	return ordered.find(choice => choice.startsWith(letter) && choice !== '');
}

/** What the table's lifecycle keys run: the confirmed actions, a reboot's hard variant, and boot. */
type LifecycleAction = ConfirmAction | 'hard-reboot' | 'boot';

const LIFECYCLE_WORDS: Record<LifecycleAction, {readonly doing: string; readonly done: string}> = {
	stop: {doing: 'stopping', done: 'stopped'},
	kill: {doing: 'killing', done: 'killed'},
	boot: {doing: 'booting', done: 'booted'},
	reboot: {doing: 'rebooting', done: 'rebooted'},
	'hard-reboot': {doing: 'resetting', done: 'reset'},
	delete: {doing: 'deleting', done: 'deleted'},
};

async function runAction(actions: FleetActions, action: LifecycleAction, target: Target): Promise<Vm> {
	switch (action) {
		case 'stop':
		case 'kill': {
			return actions.stop(target, {isKill: action === 'kill'});
		}

		case 'boot': {
			return actions.boot(target);
		}

		case 'reboot':
		case 'hard-reboot': {
			return actions.reboot(target, {isHard: action === 'hard-reboot'});
		}

		case 'delete': {
			return actions.delete(target);
		}
	}
}

function describeError(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}

export function App({store, actions, info, consoleFollowMs = 1000, onConsole}: AppProps) {
	const {exit} = useApp();
	const live = useSyncExternalStore(store.subscribe, store.getState);
	const [viewRef, dispatch] = useSyncReducer(viewReducer, initialView);
	const view = viewRef.current;
	const {columns: width, rows: height} = useTerminalSize();
	// While paused the table holds still: show the fleet as it was when `p` was pressed.
	const frozen = useRef<FleetState | null>(null);
	if (view.isPaused && frozen.current === null) {
		frozen.current = live;
	} else if (!view.isPaused) {
		frozen.current = null;
	}

	const fleet = frozen.current ?? live;
	const rows = useMemo(() => tableRows(fleet.vms.values(), view.filter, view.sort), [fleet.vms, view.filter, view.sort]);
	const rowIds = useMemo(() => rows.map(vm => vm.id), [rows]);
	const columns = useMemo(() => fitColumns(width), [width]);
	const selected = selectedIndex(view, rowIds);
	const bodyHeight = Math.max(1, height - HEADER_LINES - FOOTER_LINES - 1);
	const startRef = useRef(0);
	const start = windowStart(Math.max(0, selected), bodyHeight, startRef.current, rows.length);
	startRef.current = start;
	const [consoleView, setConsoleView] = useState<ConsoleView>({text: null, error: null});
	const onKeyRef = useRef<(input: string, key: Key) => void>(() => {});
	useInput((input, key) => {
		for (const [one, itsKey] of typedKeys(input, key)) {
			onKeyRef.current(one, itsKey);
		}
	});

	// Keep the selection on the same VM when rows come and go.
	useEffect(() => {
		dispatch({type: 'sync-rows', rowIds});
	}, [rowIds]);

	const say = useCallback((text: string) => dispatch({type: 'message', message: {text, isError: false}}), []);
	const sayError = useCallback((text: string) => dispatch({type: 'message', message: {text, isError: true}}), []);

	// The detail view follows the VM's console while it runs (a boot is watched as it happens): it
	// loads when opened, when the VM's state changes and on `r`, then every `consoleFollowMs` while
	// the VM runs and updates are not paused. Only the newest answer for the VM on screen is shown.
	const detailVm = view.mode.kind === 'detail' ? fleet.vms.get(view.mode.vmId) : undefined;
	const detailId = detailVm?.id;
	const detailHost = detailVm?.host;
	const detailState = detailVm?.state;
	const isDetailLive = detailState !== undefined && LIVE_STATES.has(detailState) && !view.isPaused;
	const [consoleReloads, setConsoleReloads] = useState(0);
	const consoleLoads = useRef({shown: '', sent: 0, applied: 0, inFlight: 0});
	const loadConsole = useCallback(
		(target: Target, options: {readonly isTick: boolean}) => {
			const loads = consoleLoads.current;
			// A tick while an answer is still on its way would only queue up behind it.
			if (options.isTick && loads.inFlight > 0) {
				return;
			}

			const key = `${target.id}@${target.host}`;
			const sequence = ++loads.sent;
			const isNewest = () => loads.shown === key && sequence > loads.applied;
			loads.inFlight++;
			actions
				.consoleTail(target)
				.then(
					text => {
						if (isNewest()) {
							loads.applied = sequence;
							setConsoleView({text, error: null});
						}
					},
					(error: unknown) => {
						if (isNewest()) {
							loads.applied = sequence;
							setConsoleView(previous => ({text: previous.text, error: `console unavailable: ${describeError(error)}`}));
						}
					},
				)
				.finally(() => {
					loads.inFlight--;
				});
		},
		[actions],
	);
	useEffect(() => {
		consoleLoads.current.shown = detailId === undefined || detailHost === undefined ? '' : `${detailId}@${detailHost}`;
		if (detailId !== undefined && detailHost !== undefined) {
			loadConsole({id: detailId, host: detailHost}, {isTick: false});
		}
	}, [loadConsole, detailId, detailHost, detailState, consoleReloads]);
	useEffect(() => {
		if (!isDetailLive || detailId === undefined || detailHost === undefined) {
			return;
		}

		// A `p` takes hold at the key, not when React gets round to this effect's cleanup.
		const timer = setInterval(() => viewRef.current.isPaused || loadConsole({id: detailId, host: detailHost}, {isTick: true}), consoleFollowMs);
		return () => clearInterval(timer);
	}, [loadConsole, detailId, detailHost, isDetailLive, consoleFollowMs, viewRef]);

	const runLifecycle = useCallback(
		async (action: LifecycleAction, targets: readonly Target[]) => {
			const words = LIFECYCLE_WORDS[action];
			say(`${words.doing} ${targets.length === 1 ? targets[0]!.id : `${targets.length} VMs`}…`);
			const results = await Promise.allSettled(targets.map(async target => runAction(actions, action, target)));
			const failures = results.flatMap((result, index) => (result.status === 'rejected' ? [`${targets[index]!.id}: ${describeError(result.reason)}`] : []));
			const done = targets.length - failures.length;
			if (failures.length === 0) {
				// One VM: say how it ended (a graceful stop that had to kill says so).
				const [only] = results;
				const how = action === 'stop' && targets.length === 1 && only?.status === 'fulfilled' && only.value.exit ? ` (${only.value.exit})` : '';
				say(targets.length === 1 ? `${words.done} ${targets[0]!.id} on ${targets[0]!.host}${how}` : `${words.done} ${done} VMs`);
			} else {
				sayError(`${done > 0 ? `${done} done; ` : ''}failed: ${failures.join('; ')}`);
			}

			dispatch({type: 'clear-marks'});
			actions.refresh();
		},
		[actions, say, sayError],
	);

	const runStart = useCallback(
		async (dialog: StartDialogState) => {
			const image = dialog.images?.[dialog.imageIndex];
			if (!image) {
				return;
			}

			const memoryMb = dialog.memory.trim() ? Number(dialog.memory) : undefined;
			const cpus = dialog.cpus.trim() ? Number(dialog.cpus) : undefined;
			if ((memoryMb !== undefined && !(Number.isInteger(memoryMb) && memoryMb >= 16)) || (cpus !== undefined && !(Number.isInteger(cpus) && cpus >= 1))) {
				dispatch({type: 'start-edit', patch: {error: 'memory must be a whole number of MB ≥ 16 and cpus a whole number ≥ 1'}});
				return;
			}

			const request: StartRequest = {
				image: image.name,
				...(dialog.host.trim() ? {host: dialog.host.trim()} : {}),
				...(memoryMb === undefined ? {} : {memoryMb}),
				...(cpus === undefined ? {} : {cpus}),
				...(dialog.network === '' ? {} : {network: dialog.network}),
				...(dialog.restart === '' ? {} : {restart: dialog.restart}),
			};
			dispatch({type: 'close'});
			say(`starting ${image.name}${request.host ? ` on ${request.host}` : ''}…`);
			try {
				const vm = await actions.start(request);
				say(`started ${vm.id} on ${vm.host}`);
			} catch (error) {
				sayError(`start failed: ${describeError(error)}`);
			}
		},
		[actions, say, sayError],
	);

	const openStart = useCallback(() => {
		dispatch({type: 'open', mode: newStartDialog()});
		actions.images().then(
			images => dispatch({type: 'start-images', images, error: null}),
			(error: unknown) => dispatch({type: 'start-images', images: [], error: describeError(error)}),
		);
	}, [actions]);

	// Keys read the view as of the last key, not as of the last render: fast typing never sees stale state.
	onKeyRef.current = (input: string, key: Key) => {
		const view = viewRef.current;
		const {mode} = view;
		if (key.ctrl && input === 'c') {
			exit();
			return;
		}

		switch (mode.kind) {
			case 'help': {
				dispatch({type: 'close'});
				return;
			}

			case 'confirm': {
				dispatch({type: 'close'});
				if (input === 'y' || input === 'Y') {
					void runLifecycle(mode.action, mode.targets);
				} else if (mode.action === 'reboot' && input === 'h') {
					void runLifecycle('hard-reboot', mode.targets);
				} else {
					say('cancelled');
				}

				return;
			}

			case 'filter': {
				if (key.escape) {
					dispatch({type: 'filter-clear'});
				} else if (key.return) {
					dispatch({type: 'filter-keep'});
				} else if (key.backspace || key.delete) {
					dispatch({type: 'filter-edit', text: view.filter.slice(0, -1)});
				} else if (input && !key.ctrl && !key.meta && !key.upArrow && !key.downArrow) {
					dispatch({type: 'filter-edit', text: view.filter + input});
				}

				return;
			}

			case 'detail': {
				if (key.escape || input === 'q' || key.return) {
					dispatch({type: 'close'});
				} else if (input === 'r') {
					setConsoleReloads(count => count + 1);
				} else if (input === 'p') {
					dispatch({type: 'toggle-pause'});
				}

				return;
			}

			case 'start': {
				onStartKey(mode, input, key);
				return;
			}

			case 'table': {
				onTableKey(view, input, key);
			}
		}
	};

	function onStartKey(dialog: StartDialogState, input: string, key: Key): void {
		if (key.escape) {
			dispatch({type: 'close'});
			say('start cancelled');
			return;
		}

		if (key.return) {
			void runStart(dialog);
			return;
		}

		if (key.tab) {
			const index = START_FIELDS.indexOf(dialog.field);
			const next = (index + (key.shift ? START_FIELDS.length - 1 : 1)) % START_FIELDS.length;
			dispatch({type: 'start-edit', patch: {field: START_FIELDS[next]!}});
			return;
		}

		if (dialog.field === 'image') {
			const count = dialog.images?.length ?? 0;
			if ((key.upArrow || input === 'k') && count > 0) {
				dispatch({type: 'start-edit', patch: {imageIndex: (dialog.imageIndex - 1 + count) % count}});
			} else if ((key.downArrow || input === 'j') && count > 0) {
				dispatch({type: 'start-edit', patch: {imageIndex: (dialog.imageIndex + 1) % count}});
			}

			return;
		}

		if (dialog.field === 'network' || dialog.field === 'restart') {
			const delta = key.leftArrow ? -1 : key.rightArrow || input === ' ' ? 1 : 0;
			const isLetter = /^[a-z]$/.test(input) && !key.ctrl && !key.meta;
			// A letter jumps to the next choice starting with it (p: private, then public).
			if (dialog.field === 'network') {
				const network = delta === 0 ? (isLetter ? nextByLetter(START_NETWORKS, dialog.network, input) : undefined) : cycleStartNetwork(dialog.network, delta);
				if (network !== undefined) {
					dispatch({type: 'start-edit', patch: {network, error: null}});
				}
			} else {
				const restart = delta === 0 ? (isLetter ? nextByLetter(START_RESTARTS, dialog.restart, input) : undefined) : cycleChoice(START_RESTARTS, dialog.restart, delta);
				if (restart !== undefined) {
					dispatch({type: 'start-edit', patch: {restart, error: null}});
				}
			}

			return;
		}

		const value = dialog[dialog.field];
		if (key.backspace || key.delete) {
			dispatch({type: 'start-edit', patch: {[dialog.field]: value.slice(0, -1), error: null}});
		} else if (input && !key.ctrl && !key.meta && /^[\w.-]+$/.test(input)) {
			dispatch({type: 'start-edit', patch: {[dialog.field]: value + input, error: null}});
		}
	}

	function onTableKey(view: ViewState, input: string, key: Key): void {
		const page = Math.max(1, bodyHeight - 1);
		const command = tableKeyCommand(input, key);
		switch (command) {
			case 'up':
			case 'down':
			case 'page-up':
			case 'page-down': {
				const delta = {up: -1, down: 1, 'page-up': -page, 'page-down': page}[command];
				dispatch({type: 'move', delta, rowIds});
				break;
			}

			case 'first':
			case 'last': {
				dispatch({type: 'jump', to: command, rowIds});
				break;
			}

			case 'mark': {
				dispatch({type: 'toggle-mark', rowIds});
				break;
			}

			case 'stop':
			case 'kill':
			case 'reboot':
			case 'delete':
			case 'boot': {
				const targets = actionTargets(view, rows, fleet.vms);
				if (targets.length === 0) {
					sayError('no VM selected');
				} else if (command === 'boot') {
					// A boot loses nothing: no question.
					void runLifecycle('boot', targets);
				} else {
					dispatch({type: 'open', mode: {kind: 'confirm', action: command, targets}});
				}

				break;
			}

			case 'new': {
				openStart();
				break;
			}

			case 'filter': {
				dispatch({type: 'open', mode: {kind: 'filter'}});
				break;
			}

			case 'sort': {
				dispatch({type: 'cycle-sort'});
				break;
			}

			case 'reverse-sort': {
				dispatch({type: 'reverse-sort'});
				break;
			}

			case 'details': {
				const vm = rows[selected];
				if (vm) {
					setConsoleView({text: null, error: null});
					dispatch({type: 'open', mode: {kind: 'detail', vmId: vm.id}});
				}

				break;
			}

			case 'pause': {
				dispatch({type: 'toggle-pause'});
				break;
			}

			case 'refresh': {
				actions.refresh();
				say('refreshing…');
				break;
			}

			case 'help': {
				dispatch({type: 'open', mode: {kind: 'help'}});
				break;
			}

			case 'console': {
				const vm = rows[selected];
				if (!onConsole) {
					break;
				}

				if (vm) {
					onConsole(vm.id);
					exit();
				} else {
					sayError('no VM selected');
				}

				break;
			}

			case 'quit': {
				exit();
				break;
			}

			case 'clear': {
				dispatch({type: 'clear-marks'});
				dispatch({type: 'message', message: null});
				break;
			}

			case undefined: {
				break;
			}
		}
	}

	const {mode} = view;
	let body;
	if (mode.kind === 'help') {
		body = <HelpView />;
	} else if (mode.kind === 'detail') {
		body = <DetailView vm={fleet.vms.get(mode.vmId)} consoleView={consoleView} height={bodyHeight + 1} width={width} />;
	} else if (mode.kind === 'start') {
		body = <StartDialog dialog={mode} height={bodyHeight + 1} />;
	} else {
		body = (
			<VmTable
				rows={rows}
				columns={columns}
				start={start}
				height={bodyHeight}
				selected={selected}
				marked={view.marked}
				hosts={fleet.hosts}
				now={fleet.now}
				sort={view.sort}
				isDimmed={fleet.connection.status === 'disconnected'}
				emptyText={fleet.vms.size === 0 ? (fleet.lastRoundAt === null ? 'waiting for the first answers…' : 'No VMs. Press n to start one.') : 'No VM matches the filter.'}
			/>
		);
	}

	return (
		<Box flexDirection="column" width={width} height={height}>
			<Header fleet={fleet} info={info} isPaused={view.isPaused} vmCount={fleet.vms.size} shownCount={rows.length} width={width} />
			<Box flexDirection="column" flexGrow={1}>
				{body}
			</Box>
			{mode.kind === 'confirm' ? (
				<Box flexDirection="column">
					<ConfirmBar action={mode.action} targets={mode.targets} vms={fleet.vms} />
					<Footer message={null} mode={mode} filter={view.filter} />
				</Box>
			) : (
				<Footer message={view.message} mode={mode} filter={view.filter} />
			)}
		</Box>
	);
}
