/**
 * What the operator is doing in the TUI: selection (kept on the same VM across refreshes), marks,
 * filter, sort, pause, dialogs and the message line. A pure reducer; keys map onto its actions.
 */
import {NETWORK_MODES, type NetworkMode} from '../protocol/network-modes.js';
import {RESTART_POLICIES, type RestartPolicy} from '../protocol/restart-policies.js';
import {INITIAL_SCROLLBACK, scrollbackReducer, type Scrollback, type ScrollbackAction, type ScrollFrame} from './scrollback.js';
import {nextSortColumn, type SortSpec} from './table.js';
import {SCREENS, type Screen} from './table-keys.js';

export type Target = {readonly id: string; readonly host: string};

export type ImageChoice = {readonly name: string; readonly hosts: readonly string[]};

export const START_FIELDS = ['image', 'host', 'memory', 'cpus', 'network', 'restart'] as const;
export type StartField = (typeof START_FIELDS)[number];

/** The start dialog's network: a mode, or '' for the host's default (`--network-default`). */
export type StartNetwork = '' | NetworkMode;

/** The network choices in the order ←/→ go through them. */
export const START_NETWORKS: readonly StartNetwork[] = ['', ...NETWORK_MODES];

/** The start dialog's restart policy: a policy, or '' for the default (`on-failure`). */
export type StartRestart = '' | RestartPolicy;

/** The restart choices in the order ←/→ go through them. */
export const START_RESTARTS: readonly StartRestart[] = ['', ...RESTART_POLICIES];

/** The choice `delta` steps from `current` in `choices`, wrapping around. */
export function cycleChoice<T>(choices: readonly T[], current: T, delta: number): T {
	const index = choices.indexOf(current);
	const count = choices.length;
	return choices[(((index + delta) % count) + count) % count]!;
}

/** The network choice `delta` steps from `current`, wrapping around. */
export function cycleStartNetwork(current: StartNetwork, delta: number): StartNetwork {
	return cycleChoice(START_NETWORKS, current, delta);
}

export type StartDialog = {
	readonly kind: 'start';
	readonly images: readonly ImageChoice[] | null;
	readonly error: string | null;
	readonly imageIndex: number;
	readonly field: StartField;
	readonly host: string;
	readonly memory: string;
	readonly cpus: string;
	readonly network: StartNetwork;
	readonly restart: StartRestart;
};

/** The lifecycle actions that ask y/N first (a boot loses nothing and asks nothing). */
export type ConfirmAction = 'stop' | 'kill' | 'reboot' | 'delete';

/** A host a VM may be migrated to, as the picker shows it: hosts that cannot take it say why. */
export type MigrationChoice = {readonly host: string; readonly room: string; readonly problem: string | null};

/** `m`: where to migrate `target`; `index` is the highlighted choice. */
export type MigrateDialog = {
	readonly kind: 'migrate';
	readonly target: Target;
	readonly choices: readonly MigrationChoice[];
	readonly index: number;
};

/** The hosts view's actions that ask first. */
export type HostAction = 'drain';

export type Mode =
	| {readonly kind: 'table'}
	| {readonly kind: 'filter'}
	| {readonly kind: 'help'}
	| {readonly kind: 'detail'; readonly vmId: string; readonly scrollback: Scrollback}
	| {readonly kind: 'confirm'; readonly action: ConfirmAction; readonly targets: readonly Target[]}
	| {readonly kind: 'confirm-migrate'; readonly target: Target; readonly to: string}
	| {readonly kind: 'confirm-host'; readonly action: HostAction; readonly host: string}
	| MigrateDialog
	| StartDialog;

/** Where a list's selection is: an id kept across refreshes, and the row index to land near when it goes. */
export type Selection = {readonly selectedId: string | null; readonly cursor: number};

/** Something the operator set going that takes a while (a migration, a drain): shown until it ends, then its result. */
export type Operation = {
	readonly id: string;
	readonly text: string;
	readonly startedAt: number;
	/** Hosts it involves (the hosts view shows it on their rows). */
	readonly hosts: readonly string[];
	/** The VM it migrates (a migration's: the hosts view then shows that VM's progress on it, not beside it). */
	readonly vmId?: string;
	readonly result: {readonly text: string; readonly isError: boolean; readonly at: number} | null;
};

export type Message = {readonly text: string; readonly isError: boolean};

export type ViewState = {
	readonly mode: Mode;
	/** The list on screen (`1`–`4`, `H`, `Tab`). */
	readonly screen: Screen;
	/** The VM table's selection. */
	readonly selectedId: string | null;
	/** Where the selection was, to land nearby when the selected VM disappears. */
	readonly cursor: number;
	/** The other lists' selections. */
	readonly selections: Readonly<Record<Exclude<Screen, 'vms'>, Selection>>;
	readonly marked: ReadonlySet<string>;
	/** Each screen's `/` filter. */
	readonly filters: Readonly<Record<Screen, string>>;
	/** Migrations and drains set going from this TUI, newest last. */
	readonly operations: readonly Operation[];
	readonly sort: SortSpec;
	readonly isPaused: boolean;
	readonly message: Message | null;
};

export type ViewAction =
	| {readonly type: 'move'; readonly delta: number; readonly rowIds: readonly string[]}
	| {readonly type: 'jump'; readonly to: 'first' | 'last'; readonly rowIds: readonly string[]}
	| {readonly type: 'toggle-mark'; readonly rowIds: readonly string[]}
	/** Marks every row in `rowIds` (the rows the filter shows); when all are marked already, unmarks them. */
	| {readonly type: 'mark-all'; readonly rowIds: readonly string[]}
	/** Keeps `screen`'s selection on the same row when its rows change (default: the VM table). */
	| {readonly type: 'sync-rows'; readonly rowIds: readonly string[]; readonly screen?: Screen}
	| {readonly type: 'screen'; readonly screen: Screen | 'next'}
	| {readonly type: 'migrate-pick'; readonly delta: number}
	| {readonly type: 'operation-start'; readonly operation: Omit<Operation, 'result'>}
	| {readonly type: 'operation-progress'; readonly id: string; readonly text: string}
	| {readonly type: 'operation-end'; readonly id: string; readonly text: string; readonly isError: boolean; readonly at: number}
	| {readonly type: 'open'; readonly mode: Mode}
	| {readonly type: 'close'}
	/** Sets the current screen's filter (and `screen`'s, when given: a group's members shown in the VM table). */
	| {readonly type: 'filter-edit'; readonly text: string; readonly screen?: Screen}
	| {readonly type: 'filter-keep'}
	| {readonly type: 'filter-clear'}
	| {readonly type: 'cycle-sort'}
	| {readonly type: 'reverse-sort'}
	| {readonly type: 'toggle-pause'}
	| {readonly type: 'message'; readonly message: Message | null}
	| {readonly type: 'clear-marks'}
	| {readonly type: 'start-images'; readonly images: readonly ImageChoice[] | null; readonly error: string | null}
	| {readonly type: 'start-edit'; readonly patch: Partial<Omit<StartDialog, 'kind'>>}
	| {readonly type: 'scrollback'; readonly action: ScrollbackAction; readonly frame: ScrollFrame};

const NO_SELECTION: Selection = {selectedId: null, cursor: 0};

/** How many finished operations are kept (their results shown in the hosts view). */
const KEPT_OPERATIONS = 20;

export function initialView(): ViewState {
	return {
		mode: {kind: 'table'},
		screen: 'vms',
		selectedId: null,
		cursor: 0,
		selections: {hosts: NO_SELECTION, groups: NO_SELECTION, events: NO_SELECTION},
		marked: new Set(),
		filters: {vms: '', hosts: '', groups: '', events: ''},
		operations: [],
		sort: {column: 'host', isDescending: false},
		isPaused: false,
		message: null,
	};
}

/** The selection of `screen`'s list. */
export function selectionOf(view: ViewState, screen: Screen = view.screen): Selection {
	return screen === 'vms' ? {selectedId: view.selectedId, cursor: view.cursor} : view.selections[screen];
}

/** The current screen's filter. */
export function screenFilter(view: ViewState, screen: Screen = view.screen): string {
	return view.filters[screen];
}

function indexIn(selection: Selection, rowIds: readonly string[]): number {
	if (rowIds.length === 0) {
		return -1;
	}

	const index = selection.selectedId === null ? -1 : rowIds.indexOf(selection.selectedId);
	return index === -1 ? Math.min(selection.cursor, rowIds.length - 1) : index;
}

/** The selected row's index in `rowIds` of `screen` (the current one by default); -1 when there are no rows. */
export function selectedIndex(view: ViewState, rowIds: readonly string[], screen: Screen = view.screen): number {
	return indexIn(selectionOf(view, screen), rowIds);
}

function select(view: ViewState, rowIds: readonly string[], index: number, screen: Screen = view.screen): ViewState {
	const current = selectionOf(view, screen);
	let next: Selection;
	if (rowIds.length === 0) {
		next = NO_SELECTION;
	} else {
		const cursor = Math.max(0, Math.min(rowIds.length - 1, index));
		next = {selectedId: rowIds[cursor] ?? null, cursor};
	}

	if (next.selectedId === current.selectedId && next.cursor === current.cursor) {
		return view;
	}

	return screen === 'vms' ? {...view, ...next} : {...view, selections: {...view.selections, [screen]: next}};
}

export function viewReducer(view: ViewState, action: ViewAction): ViewState {
	switch (action.type) {
		case 'move': {
			return select(view, action.rowIds, selectedIndex(view, action.rowIds) + action.delta);
		}

		case 'jump': {
			return select(view, action.rowIds, action.to === 'first' ? 0 : action.rowIds.length - 1);
		}

		case 'sync-rows': {
			const screen = action.screen ?? 'vms';
			return select(view, action.rowIds, selectedIndex(view, action.rowIds, screen), screen);
		}

		case 'mark-all': {
			if (action.rowIds.length === 0) {
				return view;
			}

			const marked = new Set(view.marked);
			const isAllMarked = action.rowIds.every(id => marked.has(id));
			for (const id of action.rowIds) {
				if (isAllMarked) {
					marked.delete(id);
				} else {
					marked.add(id);
				}
			}

			return {...view, marked};
		}

		case 'screen': {
			const screen = action.screen === 'next' ? SCREENS[(SCREENS.indexOf(view.screen) + 1) % SCREENS.length]! : action.screen;
			return screen === view.screen ? view : {...view, screen};
		}

		case 'migrate-pick': {
			if (view.mode.kind !== 'migrate') {
				return view;
			}

			const count = view.mode.choices.length;
			return count === 0 ? view : {...view, mode: {...view.mode, index: (((view.mode.index + action.delta) % count) + count) % count}};
		}

		case 'operation-start': {
			const operations = [...view.operations.filter(operation => operation.id !== action.operation.id), {...action.operation, result: null}];
			return {...view, operations: operations.slice(-KEPT_OPERATIONS)};
		}

		case 'operation-progress':
		case 'operation-end': {
			if (!view.operations.some(operation => operation.id === action.id)) {
				return view;
			}

			return {
				...view,
				operations: view.operations.map(operation => {
					if (operation.id !== action.id) {
						return operation;
					}

					return action.type === 'operation-progress' ? {...operation, text: action.text} : {...operation, result: {text: action.text, isError: action.isError, at: action.at}};
				}),
			};
		}

		case 'toggle-mark': {
			const id = action.rowIds[selectedIndex(view, action.rowIds)];
			if (id === undefined) {
				return view;
			}

			const marked = new Set(view.marked);
			if (!marked.delete(id)) {
				marked.add(id);
			}

			return select({...view, marked}, action.rowIds, selectedIndex(view, action.rowIds) + 1);
		}

		case 'clear-marks': {
			return view.marked.size === 0 ? view : {...view, marked: new Set()};
		}

		case 'open': {
			return {...view, mode: action.mode, message: action.mode.kind === 'table' ? view.message : null};
		}

		case 'close': {
			return view.mode.kind === 'table' ? view : {...view, mode: {kind: 'table'}};
		}

		case 'filter-edit': {
			const screen = action.screen ?? view.screen;
			const filtered = {...view, filters: {...view.filters, [screen]: action.text}};
			return screen === 'vms' ? {...filtered, cursor: 0} : {...filtered, selections: {...view.selections, [screen]: {...view.selections[screen], cursor: 0}}};
		}

		case 'filter-keep': {
			return {...view, mode: {kind: 'table'}};
		}

		case 'filter-clear': {
			return {...view, filters: {...view.filters, [view.screen]: ''}, mode: {kind: 'table'}};
		}

		case 'cycle-sort': {
			return {...view, sort: {column: nextSortColumn(view.sort.column), isDescending: false}};
		}

		case 'reverse-sort': {
			return {...view, sort: {...view.sort, isDescending: !view.sort.isDescending}};
		}

		case 'toggle-pause': {
			return {...view, isPaused: !view.isPaused};
		}

		case 'message': {
			return view.message === action.message ? view : {...view, message: action.message};
		}

		case 'start-images': {
			if (view.mode.kind !== 'start') {
				return view;
			}

			return {...view, mode: {...view.mode, images: action.images, error: action.error, imageIndex: 0}};
		}

		case 'start-edit': {
			if (view.mode.kind !== 'start') {
				return view;
			}

			return {...view, mode: {...view.mode, ...action.patch}};
		}

		case 'scrollback': {
			if (view.mode.kind !== 'detail') {
				return view;
			}

			const scrollback = scrollbackReducer(view.mode.scrollback, action.action, action.frame);
			return scrollback === view.mode.scrollback ? view : {...view, mode: {...view.mode, scrollback}};
		}
	}
}

/** The detail view of VM `vmId`, at the tail of its console. */
export function detailMode(vmId: string): Mode {
	return {kind: 'detail', vmId, scrollback: INITIAL_SCROLLBACK};
}

export function newStartDialog(): StartDialog {
	return {kind: 'start', images: null, error: null, imageIndex: 0, field: 'image', host: '', memory: '', cpus: '', network: '', restart: ''};
}

/** The VMs an action applies to: every marked one still in the fleet if any, else the selected row. */
export function actionTargets(
	view: ViewState,
	rows: ReadonlyArray<{readonly id: string; readonly host: string}>,
	fleet: ReadonlyMap<string, {readonly id: string; readonly host: string}>,
): Target[] {
	if (view.marked.size > 0) {
		return [...view.marked].flatMap(id => {
			const vm = fleet.get(id);
			return vm ? [{id: vm.id, host: vm.host}] : [];
		});
	}

	const ids = rows.map(row => row.id);
	const row = rows[selectedIndex(view, ids, 'vms')];
	return row ? [{id: row.id, host: row.host}] : [];
}
