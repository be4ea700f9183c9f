/**
 * The live VM table across every host. The fleet comes from an outside store (fed by list rounds
 * and pushed events); what the operator is doing lives in the view reducer; keys map onto both.
 */
import {Box, Text, useApp, useInput, type Key} from 'ink';
import {useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore} from 'react';
import type {Vm, VmState} from '../protocol/index.js';
import {filterHint, filterRows, parseFilter} from '../state/filter.js';
import type {FleetState} from '../state/fleet.js';
import {filterableGroup, GROUP_FILTER_FIELDS, groupRows} from '../state/groups.js';
import {filterableHost, HOST_FILTER_FIELDS, hostRows, migrationChoices} from '../state/hosts.js';
import type {FleetStore} from '../state/store.js';
import {fitColumns, tableRows, VM_FILTER_FIELDS, windowStart} from '../state/table.js';
import {screenKeyCommand, type Screen} from '../state/table-keys.js';
import {EVENT_FILTER_FIELDS, filterableEntry, type TimelineEntry} from '../state/timeline.js';
import {detailKeyCommand, SCROLLBACK_ACTIONS, searchKeyCommand} from '../state/detail-keys.js';
import {consoleLines, describeSearch, type ScrollbackAction} from '../state/scrollback.js';
import {
	actionTargets,
	initialView,
	cycleChoice,
	cycleStartNetwork,
	detailMode,
	newStartDialog,
	START_NETWORKS,
	START_RESTARTS,
	selectedIndex,
	screenFilter,
	START_FIELDS,
	viewReducer,
	type ConfirmAction,
	type StartDialog as StartDialogState,
	type Target,
	type ViewState,
} from '../state/view.js';
import type {FeedInfo, FleetActions, StartRequest} from './actions.js';
import {ConfirmBar} from './confirm-bar.js';
import {DetailView, detailConsoleRows, type ConsoleView} from './detail-view.js';
import {EventsView} from './events-view.js';
import {Footer} from './footer.js';
import {formatAge} from './format-age.js';
import {GroupsView} from './groups-view.js';
import {Header} from './header.js';
import {HelpView} from './help-view.js';
import {HostsView, hostsViewChrome} from './hosts-view.js';
import {typedKeys} from './keys.js';
import {MigrateDialog} from './migrate-dialog.js';
import {StartDialog} from './start-dialog.js';
import {color} from './theme.js';
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

/** The fields `/` knows on each screen. */
const SCREEN_FIELDS: Record<Screen, readonly string[]> = {vms: VM_FILTER_FIELDS, hosts: HOST_FILTER_FIELDS, groups: GROUP_FILTER_FIELDS, events: EVENT_FILTER_FIELDS};

/** An event's row id: stable while newer events arrive above it. */
function entryId(entry: TimelineEntry): string {
	return `${entry.at}:${entry.type}:${entry.host ?? ''}:${entry.vm ?? ''}:${entry.group ?? ''}`;
}

/** "host-a, host-b, host-c", or the first few and how many more. */
function nameHosts(ids: readonly string[]): string {
	return ids.length <= 4 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')} and ${ids.length - 3} more`;
}

/** What the VM table says when it has no row. */
function emptyVmText(fleet: FleetState, hostIds: readonly string[]): string {
	if (fleet.vms.size > 0) {
		return 'No VM matches the filter.';
	}

	if (fleet.lastRoundAt === null) {
		return 'waiting for the first answers…';
	}

	return hostIds.length === 0
		? 'No VMs, and no host has answered: is a kloud-agent running in this namespace?'
		: `No VMs on ${hostIds.length} host${hostIds.length === 1 ? '' : 's'} (${nameHosts(hostIds)}). Press n to start one, 2 for the hosts.`;
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
	const rows = useMemo(() => tableRows(fleet.vms.values(), view.filters.vms, view.sort), [fleet.vms, view.filters.vms, view.sort]);
	const rowIds = useMemo(() => rows.map(vm => vm.id), [rows]);
	// The other screens' rows are worked out only while they are on screen (the VM table with 10,000 rows stays as quick as it was).
	const isHosts = view.screen === 'hosts';
	const allHosts = useMemo(() => (isHosts ? hostRows(fleet) : []), [isHosts, fleet.hosts, fleet.vms, fleet.now]);
	const hostList = useMemo(() => filterRows(allHosts, view.filters.hosts, HOST_FILTER_FIELDS, filterableHost), [allHosts, view.filters.hosts]);
	const hostIds = useMemo(() => hostList.map(row => row.id), [hostList]);
	const isGroups = view.screen === 'groups';
	const groupList = useMemo(
		() => (isGroups ? filterRows(groupRows(fleet), view.filters.groups, GROUP_FILTER_FIELDS, filterableGroup) : []),
		[isGroups, fleet.groups, fleet.vms, fleet.hosts, fleet.now, view.filters.groups],
	);
	const groupIds = useMemo(() => groupList.map(row => row.name), [groupList]);
	const isEvents = view.screen === 'events';
	const eventList = useMemo(
		() => (isEvents ? filterRows([...fleet.timeline].reverse(), view.filters.events, EVENT_FILTER_FIELDS, filterableEntry) : []),
		[isEvents, fleet.timeline, view.filters.events],
	);
	const eventIds = useMemo(() => eventList.map(entry => entryId(entry)), [eventList]);
	const screenIds: Record<Screen, readonly string[]> = {vms: rowIds, hosts: hostIds, groups: groupIds, events: eventIds};
	const columns = useMemo(() => fitColumns(width), [width]);
	const selected = selectedIndex(view, rowIds, 'vms');
	const bodyHeight = Math.max(1, height - HEADER_LINES - FOOTER_LINES - 1);
	const startRef = useRef(0);
	const start = windowStart(Math.max(0, selected), bodyHeight, startRef.current, rows.length);
	startRef.current = start;
	// The other lists' windows, each kept around its own selection.
	const listStarts = useRef<Record<Screen, number>>({vms: 0, hosts: 0, groups: 0, events: 0});
	const listSelected = view.screen === 'vms' ? selected : selectedIndex(view, screenIds[view.screen]);
	const selectedHost = hostList[view.screen === 'hosts' ? listSelected : -1];
	const listHeight = view.screen === 'hosts' ? Math.max(1, bodyHeight + 1 - hostsViewChrome(selectedHost, fleet.vms, view.operations)) : bodyHeight;
	if (view.screen !== 'vms') {
		listStarts.current[view.screen] = windowStart(Math.max(0, listSelected), listHeight, listStarts.current[view.screen], screenIds[view.screen].length);
	}

	const listStart = listStarts.current[view.screen];
	const [consoleView, setConsoleView] = useState<ConsoleView>({text: null, error: null});
	const onKeyRef = useRef<(input: string, key: Key) => void>(() => {});
	useInput((input, key) => {
		for (const [one, itsKey] of typedKeys(input, key)) {
			onKeyRef.current(one, itsKey);
		}
	});

	// Keep the selection on the same VM (host, group, event) when rows come and go.
	useEffect(() => {
		dispatch({type: 'sync-rows', rowIds});
	}, [rowIds]);
	// (Only while on screen: elsewhere their rows are not worked out, and the selection waits.)
	useEffect(() => {
		if (isHosts) {
			dispatch({type: 'sync-rows', rowIds: hostIds, screen: 'hosts'});
		}
	}, [hostIds, isHosts]);
	useEffect(() => {
		if (isGroups) {
			dispatch({type: 'sync-rows', rowIds: groupIds, screen: 'groups'});
		}
	}, [groupIds, isGroups]);
	useEffect(() => {
		if (isEvents) {
			dispatch({type: 'sync-rows', rowIds: eventIds, screen: 'events'});
		}
	}, [eventIds, isEvents]);

	const say = useCallback((text: string) => dispatch({type: 'message', message: {text, isError: false}}), []);
	const sayError = useCallback((text: string) => dispatch({type: 'message', message: {text, isError: true}}), []);

	// The detail view follows the VM's console while it runs (a boot is watched as it happens): it
	// loads when opened, when the VM's state changes and on `r`, then every `consoleFollowMs` while
	// the VM runs and updates are not paused. Only the newest answer for the VM on screen is shown.
	const detailVm = view.mode.kind === 'detail' ? fleet.vms.get(view.mode.vmId) : undefined;
	const detailId = detailVm?.id;
	const detailHost = detailVm?.host;
	const detailState = detailVm?.state;
	// Scrolled up into the console's history the view holds still (as less does); G follows again.
	const isScrolledBack = view.mode.kind === 'detail' && view.mode.scrollback.offset > 0;
	const isDetailLive = detailState !== undefined && LIVE_STATES.has(detailState) && !view.isPaused && !isScrolledBack;
	const detailLines = useMemo(() => consoleLines(consoleView.text ?? ''), [consoleView.text]);
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

		// A `p` or a scroll back takes hold at the key, not when React gets round to this effect's cleanup.
		const timer = setInterval(() => {
			const {isPaused, mode} = viewRef.current;
			if (!isPaused && !(mode.kind === 'detail' && mode.scrollback.offset > 0)) {
				loadConsole({id: detailId, host: detailHost}, {isTick: true});
			}
		}, consoleFollowMs);
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

	/** The fleet's clock (ticks from the feed): operations are timed by it. */
	const now = () => store.getState().now;

	const runMigrate = useCallback(
		async (target: Target, to: string) => {
			const id = `migrate:${target.id}`;
			const text = `migrating ${target.id} from ${target.host} to ${to}`;
			dispatch({type: 'operation-start', operation: {id, text, startedAt: now(), hosts: [target.host, to], vmId: target.id}});
			dispatch({type: 'message', message: null});
			try {
				const result = await actions.migrate(target, to);
				const done = `migrated ${result.vm.id} from ${result.from} to ${result.vm.host} in ${(result.totalMs / 1000).toFixed(1)} s (guest paused ${Math.round(result.downtimeMs)} ms)`;
				dispatch({type: 'operation-end', id, text: done, isError: false, at: now()});
				say(done);
			} catch (error) {
				const failed = `migration of ${target.id} to ${to} failed: ${describeError(error)}`;
				dispatch({type: 'operation-end', id, text: failed, isError: true, at: now()});
				sayError(failed);
			}

			actions.refresh();
		},
		[actions, say, sayError],
	);

	const runCordon = useCallback(
		async (host: string, cordoned: boolean) => {
			say(`${cordoned ? 'cordoning' : 'uncordoning'} ${host}…`);
			try {
				const status = await actions.cordon(host, {cordoned});
				say(`${cordoned ? `cordoned ${status.id}: no new VMs go there` : `uncordoned ${status.id}: it takes new VMs again`} (${status.vmCount} VMs on it)`);
			} catch (error) {
				sayError(`${cordoned ? 'cordon' : 'uncordon'} of ${host} failed: ${describeError(error)}`);
			}

			actions.refresh();
		},
		[actions, say, sayError],
	);

	const runDrain = useCallback(
		async (host: string) => {
			const id = `drain:${host}`;
			dispatch({type: 'operation-start', operation: {id, text: `draining ${host}: cordoned, migrating its running VMs away`, startedAt: now(), hosts: [host]}});
			dispatch({type: 'message', message: null});
			try {
				const summary = await actions.drain(host, line => dispatch({type: 'operation-progress', id, text: `draining ${host}: ${line}`}));
				dispatch({type: 'operation-end', id, text: summary, isError: false, at: now()});
				say(summary);
			} catch (error) {
				const failed = `drain of ${host}: ${describeError(error).split('\n')[0]}`;
				dispatch({type: 'operation-end', id, text: failed, isError: true, at: now()});
				sayError(failed);
			}

			actions.refresh();
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

			case 'confirm-migrate':
			case 'confirm-host': {
				dispatch({type: 'close'});
				if (input !== 'y' && input !== 'Y') {
					say(mode.kind === 'confirm-migrate' ? 'migration cancelled' : 'cancelled');
				} else if (mode.kind === 'confirm-migrate') {
					void runMigrate(mode.target, mode.to);
				} else {
					void runDrain(mode.host);
				}

				return;
			}

			case 'migrate': {
				if (key.escape || input === 'q') {
					dispatch({type: 'close'});
					say('migration cancelled');
				} else if (key.upArrow || input === 'k') {
					dispatch({type: 'migrate-pick', delta: -1});
				} else if (key.downArrow || input === 'j') {
					dispatch({type: 'migrate-pick', delta: 1});
				} else if (key.return) {
					const choice = mode.choices[mode.index];
					if (choice === undefined) {
						dispatch({type: 'close'});
						sayError('no other host to migrate to');
					} else if (choice.problem === null) {
						dispatch({type: 'open', mode: {kind: 'confirm-migrate', target: mode.target, to: choice.host}});
					} else {
						sayError(`${choice.host} cannot take ${mode.target.id}: ${choice.problem}`);
					}
				}

				return;
			}

			case 'filter': {
				if (key.escape) {
					dispatch({type: 'filter-clear'});
				} else if (key.return) {
					dispatch({type: 'filter-keep'});
				} else if (key.backspace || key.delete) {
					dispatch({type: 'filter-edit', text: screenFilter(view).slice(0, -1)});
				} else if (input && !key.ctrl && !key.meta && !key.upArrow && !key.downArrow && !key.tab) {
					dispatch({type: 'filter-edit', text: screenFilter(view) + input});
				}

				return;
			}

			case 'detail': {
				const scroll = (action: ScrollbackAction) => dispatch({type: 'scrollback', action, frame: {lines: detailLines, height: detailConsoleRows(bodyHeight + 1)}});
				if (mode.scrollback.draft !== null) {
					const command = searchKeyCommand(mode.scrollback.draft, input, key);
					if (command.type === 'submit') {
						scroll({type: 'search-submit'});
					} else if (command.type === 'cancel') {
						scroll({type: 'search-cancel'});
					} else if (command.type === 'edit') {
						scroll({type: 'search-edit', text: command.text});
					}

					return;
				}

				onDetailKey(input, key, scroll);
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

	function onDetailKey(input: string, key: Key, scroll: (action: ScrollbackAction) => void): void {
		const command = detailKeyCommand(input, key);
		const action = command === undefined ? undefined : SCROLLBACK_ACTIONS[command];
		if (action) {
			scroll(action);
			return;
		}

		switch (command) {
			case 'back': {
				dispatch({type: 'close'});
				break;
			}

			case 'reload': {
				setConsoleReloads(count => count + 1);
				break;
			}

			case 'pause': {
				dispatch({type: 'toggle-pause'});
				break;
			}

			default: {
				break;
			}
		}
	}

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
		const page = Math.max(1, (view.screen === 'vms' ? bodyHeight : listHeight) - 1);
		const command = screenKeyCommand(view.screen, input, key);
		const ids = screenIds[view.screen];
		// The selection as of the last key (a key typed before the next render still acts on the row it moved to).
		const vmIndex = selectedIndex(view, rowIds, 'vms');
		const listIndex = selectedIndex(view, ids);
		switch (command) {
			case 'up':
			case 'down':
			case 'page-up':
			case 'page-down': {
				const delta = {up: -1, down: 1, 'page-up': -page, 'page-down': page}[command];
				dispatch({type: 'move', delta, rowIds: ids});
				break;
			}

			case 'first':
			case 'last': {
				dispatch({type: 'jump', to: command, rowIds: ids});
				break;
			}

			case 'mark': {
				dispatch({type: 'toggle-mark', rowIds});
				break;
			}

			case 'mark-all': {
				const isAllMarked = rowIds.length > 0 && rowIds.every(id => view.marked.has(id));
				dispatch({type: 'mark-all', rowIds});
				say(rowIds.length === 0 ? 'no VM to mark' : isAllMarked ? `unmarked ${rowIds.length} VMs` : `marked ${rowIds.length} VM${rowIds.length === 1 ? '' : 's'}${view.filters.vms ? ` (filter: ${view.filters.vms})` : ''}: x, K, b, R or D acts on them`);
				break;
			}

			case 'migrate': {
				const vm = rows[vmIndex];
				if (!vm) {
					sayError('no VM selected');
				} else if (vm.state !== 'running') {
					sayError(`${vm.id} is ${vm.state}: only a running VM migrates`);
				} else {
					const choices = migrationChoices(vm, hostRows(fleet));
					const best = choices.findIndex(choice => choice.problem === null);
					dispatch({type: 'open', mode: {kind: 'migrate', target: {id: vm.id, host: vm.host}, choices, index: Math.max(0, best)}});
				}

				break;
			}

			case 'screen-vms':
			case 'screen-hosts':
			case 'screen-groups':
			case 'screen-events': {
				dispatch({type: 'screen', screen: ({'screen-vms': 'vms', 'screen-hosts': 'hosts', 'screen-groups': 'groups', 'screen-events': 'events'} as const)[command]});
				break;
			}

			case 'next-screen': {
				dispatch({type: 'screen', screen: 'next'});
				break;
			}

			case 'cordon':
			case 'uncordon':
			case 'drain': {
				const host = hostList[listIndex];
				if (!host) {
					sayError('no host selected');
				} else if (command === 'drain') {
					dispatch({type: 'open', mode: {kind: 'confirm-host', action: 'drain', host: host.id}});
				} else {
					void runCordon(host.id, command === 'cordon');
				}

				break;
			}

			case 'members': {
				const group = groupList[listIndex];
				if (group) {
					dispatch({type: 'filter-edit', text: `group:${group.name}`, screen: 'vms'});
					dispatch({type: 'screen', screen: 'vms'});
					say(`the members of group ${group.name} (filter group:${group.name}; / then esc clears it)`);
				}

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
				const vm = rows[vmIndex];
				if (vm) {
					setConsoleView({text: null, error: null});
					dispatch({type: 'open', mode: detailMode(vm.id)});
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
				const vm = rows[vmIndex];
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
	const filterText = screenFilter(view);
	const hint = filterText ? filterHint(parseFilter(filterText, SCREEN_FIELDS[view.screen]), SCREEN_FIELDS[view.screen]) : undefined;
	const running = view.operations.filter(operation => operation.result === null);
	const activity = running.length === 0 ? null : {text: running.map(operation => `⟳ ${operation.text} (${formatAge(fleet.now - operation.startedAt)})`).join(' · '), isError: false};
	let body;
	if (mode.kind === 'help') {
		body = <HelpView screen={view.screen} />;
	} else if (mode.kind === 'migrate') {
		body = <MigrateDialog dialog={mode} height={bodyHeight + 1} />;
	} else if (mode.kind === 'detail') {
		body = <DetailView vm={fleet.vms.get(mode.vmId)} consoleView={consoleView} lines={detailLines} scrollback={mode.scrollback} height={bodyHeight + 1} width={width} />;
	} else if (mode.kind === 'start') {
		body = <StartDialog dialog={mode} height={bodyHeight + 1} />;
	} else if (view.screen !== 'vms') {
		const window = {start: listStart, height: listHeight, selected: listSelected};
		if (view.screen === 'hosts') {
			const emptyText = fleet.hosts.size > 0 ? 'No host matches the filter.' : fleet.lastRoundAt === null ? 'waiting for the first answers…' : 'No host has answered: is a kloud-agent running in this namespace?';
			body = <HostsView rows={hostList} window={{...window, emptyText}} now={fleet.now} vms={fleet.vms} operations={view.operations} />;
		} else if (view.screen === 'groups') {
			const emptyText = fleet.groups.size > 0 ? 'No group matches the filter.' : 'No groups (kloud-tui group create NAME --image IMAGE --size N).';
			body = <GroupsView rows={groupList} window={{...window, emptyText}} now={fleet.now} />;
		} else {
			const emptyText = fleet.timeline.length > 0 ? 'No event matches the filter.' : 'Nothing has happened since the TUI started: VM and host events, who did what and group changes show here.';
			body = <EventsView rows={eventList} window={{...window, emptyText}} now={fleet.now} />;
		}
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
				emptyText={emptyVmText(fleet, [...fleet.hosts.keys()].sort())}
			/>
		);
	}

	return (
		<Box flexDirection="column" width={width} height={height}>
			<Header fleet={fleet} info={info} isPaused={view.isPaused} vmCount={fleet.vms.size} shownCount={rows.length} width={width} screen={view.screen} />
			<Box flexDirection="column" flexGrow={1}>
				{body}
			</Box>
			{mode.kind === 'confirm' ? (
				<Box flexDirection="column">
					<ConfirmBar action={mode.action} targets={mode.targets} vms={fleet.vms} />
					<Footer message={null} mode={mode} screen={view.screen} filter={filterText} filterHint={hint} />
				</Box>
			) : mode.kind === 'confirm-migrate' || mode.kind === 'confirm-host' ? (
				<Box flexDirection="column">
					<Text color={color('yellow')} bold wrap="truncate">
						{mode.kind === 'confirm-migrate'
							? `Live-migrate ${mode.target.id} from ${mode.target.host} to ${mode.to}? The guest keeps running. [y/N]`
							: `Drain ${mode.host}: cordon it, then live-migrate its running VMs to other hosts? [y/N]`}
					</Text>
					<Footer message={null} mode={mode} screen={view.screen} filter={filterText} filterHint={hint} />
				</Box>
			) : (
				<Footer message={view.message ?? activity} mode={mode} screen={view.screen} filter={filterText} filterHint={hint} search={mode.kind === 'detail' ? describeSearch(mode.scrollback, detailLines) : ''} />
			)}
		</Box>
	);
}
