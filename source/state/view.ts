/**
 * What the operator is doing in the TUI: selection (kept on the same VM across refreshes), marks,
 * filter, sort, pause, dialogs and the message line. A pure reducer; keys map onto its actions.
 */
import {NETWORK_MODES, type NetworkMode} from '../protocol/network-modes.js';
import {nextSortColumn, type SortSpec} from './table.js';

export type Target = {readonly id: string; readonly host: string};

export type ImageChoice = {readonly name: string; readonly hosts: readonly string[]};

export const START_FIELDS = ['image', 'host', 'memory', 'cpus', 'network'] as const;
export type StartField = (typeof START_FIELDS)[number];

/** The start dialog's network: a mode, or '' for the host's default (`--network-default`). */
export type StartNetwork = '' | NetworkMode;

/** The network choices in the order ←/→ go through them. */
export const START_NETWORKS: readonly StartNetwork[] = ['', ...NETWORK_MODES];

/** The network choice `delta` steps from `current`, wrapping around. */
export function cycleStartNetwork(current: StartNetwork, delta: number): StartNetwork {
	const index = START_NETWORKS.indexOf(current);
	const count = START_NETWORKS.length;
	return START_NETWORKS[(((index + delta) % count) + count) % count]!;
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
};

export type Mode =
	| {readonly kind: 'table'}
	| {readonly kind: 'filter'}
	| {readonly kind: 'help'}
	| {readonly kind: 'detail'; readonly vmId: string}
	| {readonly kind: 'confirm'; readonly action: 'stop' | 'kill'; readonly targets: readonly Target[]}
	| StartDialog;

export type Message = {readonly text: string; readonly isError: boolean};

export type ViewState = {
	readonly mode: Mode;
	readonly selectedId: string | null;
	/** Where the selection was, to land nearby when the selected VM disappears. */
	readonly cursor: number;
	readonly marked: ReadonlySet<string>;
	readonly filter: string;
	readonly sort: SortSpec;
	readonly isPaused: boolean;
	readonly message: Message | null;
};

export type ViewAction =
	| {readonly type: 'move'; readonly delta: number; readonly rowIds: readonly string[]}
	| {readonly type: 'jump'; readonly to: 'first' | 'last'; readonly rowIds: readonly string[]}
	| {readonly type: 'toggle-mark'; readonly rowIds: readonly string[]}
	| {readonly type: 'sync-rows'; readonly rowIds: readonly string[]}
	| {readonly type: 'open'; readonly mode: Mode}
	| {readonly type: 'close'}
	| {readonly type: 'filter-edit'; readonly text: string}
	| {readonly type: 'filter-keep'}
	| {readonly type: 'filter-clear'}
	| {readonly type: 'cycle-sort'}
	| {readonly type: 'reverse-sort'}
	| {readonly type: 'toggle-pause'}
	| {readonly type: 'message'; readonly message: Message | null}
	| {readonly type: 'clear-marks'}
	| {readonly type: 'start-images'; readonly images: readonly ImageChoice[] | null; readonly error: string | null}
	| {readonly type: 'start-edit'; readonly patch: Partial<Omit<StartDialog, 'kind'>>};

export function initialView(): ViewState {
	return {
		mode: {kind: 'table'},
		selectedId: null,
		cursor: 0,
		marked: new Set(),
		filter: '',
		sort: {column: 'host', isDescending: false},
		isPaused: false,
		message: null,
	};
}

export function selectedIndex(view: ViewState, rowIds: readonly string[]): number {
	if (rowIds.length === 0) {
		return -1;
	}

	const index = view.selectedId === null ? -1 : rowIds.indexOf(view.selectedId);
	return index === -1 ? Math.min(view.cursor, rowIds.length - 1) : index;
}

function select(view: ViewState, rowIds: readonly string[], index: number): ViewState {
	if (rowIds.length === 0) {
		return view.selectedId === null && view.cursor === 0 ? view : {...view, selectedId: null, cursor: 0};
	}

	const cursor = Math.max(0, Math.min(rowIds.length - 1, index));
	const selectedId = rowIds[cursor] ?? null;
	return selectedId === view.selectedId && cursor === view.cursor ? view : {...view, selectedId, cursor};
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
			return select(view, action.rowIds, selectedIndex(view, action.rowIds));
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
			return {...view, filter: action.text, cursor: 0};
		}

		case 'filter-keep': {
			return {...view, mode: {kind: 'table'}};
		}

		case 'filter-clear': {
			return {...view, filter: '', mode: {kind: 'table'}};
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
	}
}

export function newStartDialog(): StartDialog {
	return {kind: 'start', images: null, error: null, imageIndex: 0, field: 'image', host: '', memory: '', cpus: '', network: ''};
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
	const row = rows[selectedIndex(view, ids)];
	return row ? [{id: row.id, host: row.host}] : [];
}
