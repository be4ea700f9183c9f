/**
 * The list screens' keys as data (VM table, hosts, groups, events): which key runs which command
 * on which screen, with the words the help view shows for it. Read by the TUI's key handler and
 * tested table-driven. Pure: a key is described by the flags the terminal library sets.
 */

/** The flags of a key press this table reads (a subset of Ink's `Key`). */
export type KeyPress = {
	readonly upArrow: boolean;
	readonly downArrow: boolean;
	readonly pageUp: boolean;
	readonly pageDown: boolean;
	readonly return: boolean;
	readonly escape: boolean;
	readonly tab: boolean;
	readonly ctrl: boolean;
	readonly meta: boolean;
};

/** The TUI's list screens: `1`–`4` (or `Tab`) go from one to the next. */
export const SCREENS = ['vms', 'hosts', 'groups', 'events'] as const;
export type Screen = (typeof SCREENS)[number];

export const SCREEN_TITLES: Record<Screen, string> = {vms: 'VMs', hosts: 'hosts', groups: 'groups', events: 'events'};

export const TABLE_COMMANDS = [
	'up', 'down', 'page-up', 'page-down', 'first', 'last', 'mark', 'mark-all',
	'new', 'stop', 'kill', 'boot', 'reboot', 'delete', 'migrate',
	'filter', 'sort', 'reverse-sort', 'details', 'console', 'pause', 'refresh', 'help', 'quit', 'clear',
	'screen-vms', 'screen-hosts', 'screen-groups', 'screen-events', 'next-screen',
	'cordon', 'uncordon', 'drain', 'members',
] as const;
export type TableCommand = (typeof TABLE_COMMANDS)[number];

type Flag = Exclude<keyof KeyPress, 'ctrl' | 'meta'>;

export type Binding = {
	readonly command: TableCommand;
	readonly inputs?: readonly string[];
	readonly flag?: Flag;
	/** Where it works: every list screen, or these. */
	readonly screens: 'all' | readonly Screen[];
	/** The key as the help view writes it. */
	readonly label: string;
	readonly help: string;
};

const ALL = 'all';

/** Every key of the list screens. Keys that lose something (`x`, `K`, `R`, `D`, `m`, `d`) ask first. */
export const TABLE_BINDINGS: readonly Binding[] = [
	{command: 'up', inputs: ['k'], flag: 'upArrow', screens: ALL, label: '↑ k', help: 'move up'},
	{command: 'down', inputs: ['j'], flag: 'downArrow', screens: ALL, label: '↓ j', help: 'move down'},
	{command: 'page-up', flag: 'pageUp', screens: ALL, label: 'PgUp', help: 'page up'},
	{command: 'page-down', flag: 'pageDown', screens: ALL, label: 'PgDn', help: 'page down'},
	{command: 'first', inputs: ['g'], screens: ALL, label: 'g', help: 'first row'},
	{command: 'last', inputs: ['G'], screens: ALL, label: 'G', help: 'last row'},
	{command: 'filter', inputs: ['/'], screens: ALL, label: '/', help: 'filter: text, and fields such as state:crashed host:host-a image:demo group:web (all must match); Enter keeps it, Esc clears it'},
	{command: 'screen-vms', inputs: ['1'], screens: ALL, label: '1', help: 'the VM table'},
	{command: 'screen-hosts', inputs: ['2'], screens: ALL, label: '2', help: 'the hosts: state, cordon, VMs, vCPUs and memory committed against budget, use'},
	{command: 'screen-groups', inputs: ['3'], screens: ALL, label: '3', help: 'the groups: desired / running / healthy, min / max, last scaling'},
	{command: 'screen-events', inputs: ['4'], screens: ALL, label: '4', help: 'the events: who did what, crashes, hosts down and back, group changes'},
	{command: 'screen-hosts', inputs: ['H'], screens: ['vms', 'groups', 'events'], label: 'H', help: 'hosts view (H again: back to the VMs)'},
	{command: 'screen-vms', inputs: ['H'], screens: ['hosts'], label: 'H', help: 'back to the VM table'},
	{command: 'next-screen', flag: 'tab', screens: ALL, label: 'Tab', help: 'next screen'},
	{command: 'mark', inputs: [' '], screens: ['vms'], label: 'space', help: 'mark or unmark the row (b, x, K, R and D then act on every marked VM)'},
	{command: 'mark-all', inputs: ['*'], screens: ['vms'], label: '*', help: 'mark every row the filter shows (again: unmark them)'},
	{command: 'new', inputs: ['n'], screens: ['vms'], label: 'n', help: 'new VM: pick an image, Tab for host, memory, cpus, network and restart (←/→), Enter to start'},
	{command: 'stop', inputs: ['x'], screens: ['vms'], label: 'x', help: 'graceful stop; the VM is kept, stopped, with its disk (asks y/N)'},
	{command: 'kill', inputs: ['K'], screens: ['vms'], label: 'K', help: 'kill at once; the VM is kept, stopped (asks y/N)'},
	{command: 'boot', inputs: ['b'], screens: ['vms'], label: 'b', help: 'boot a stopped VM again (same id, MAC, disk and seed)'},
	{command: 'reboot', inputs: ['R'], screens: ['vms'], label: 'R', help: 'reboot (asks: y ACPI reboot, h hard reset)'},
	{command: 'delete', inputs: ['D'], screens: ['vms'], label: 'D', help: 'delete: its disk, seed and IP are lost (asks y/N)'},
	{command: 'migrate', inputs: ['m'], screens: ['vms'], label: 'm', help: 'live-migrate the VM: pick a host (most room first), confirm; progress below'},
	{command: 'sort', inputs: ['s'], screens: ['vms'], label: 's', help: 'sort by the next column'},
	{command: 'reverse-sort', inputs: ['S'], screens: ['vms'], label: 'S', help: 'reverse the order'},
	{command: 'details', flag: 'return', screens: ['vms'], label: 'Enter', help: 'details of the selected VM; its console follows the boot (↑↓ PgUp PgDn g G scroll it, / n N search it)'},
	{command: 'console', inputs: ['c'], screens: ['vms'], label: 'c', help: 'the live console of the selected VM, full screen (you type into it); ctrl-] back to the table'},
	{command: 'cordon', inputs: ['c'], screens: ['hosts'], label: 'c', help: 'cordon the host: no new VMs placed or migrated there'},
	{command: 'uncordon', inputs: ['u'], screens: ['hosts'], label: 'u', help: 'uncordon the host'},
	{command: 'drain', inputs: ['d'], screens: ['hosts'], label: 'd', help: 'drain the host: cordon it, then migrate its running VMs away (asks y/N)'},
	{command: 'members', flag: 'return', screens: ['groups'], label: 'Enter', help: 'the group\'s members in the VM table (filter group:NAME)'},
	{command: 'pause', inputs: ['p'], screens: ALL, label: 'p', help: 'pause / resume live updates'},
	{command: 'refresh', inputs: ['r'], screens: ALL, label: 'r', help: 'refresh now'},
	{command: 'help', inputs: ['?'], screens: ALL, label: '?', help: 'this help'},
	{command: 'clear', flag: 'escape', screens: ALL, label: 'esc', help: 'clear marks and the message line'},
	{command: 'quit', inputs: ['q'], screens: ALL, label: 'q ctrl-c', help: 'quit'},
];

function isOn(binding: Binding, screen: Screen): boolean {
	return binding.screens === ALL || binding.screens.includes(screen);
}

/** The bindings that work on `screen`. */
export function screenBindings(screen: Screen): Binding[] {
	return TABLE_BINDINGS.filter(binding => isOn(binding, screen));
}

/** The command a key runs on `screen`, or undefined for a key that does nothing there. */
export function screenKeyCommand(screen: Screen, input: string, key: KeyPress): TableCommand | undefined {
	const bindings = screenBindings(screen);
	const flagged = bindings.find(binding => binding.flag !== undefined && key[binding.flag]);
	if (flagged) {
		return flagged.command;
	}

	if (key.ctrl || key.meta) {
		return undefined;
	}

	return bindings.find(binding => binding.inputs?.includes(input))?.command;
}

/** The command a key runs in the VM table. */
export function tableKeyCommand(input: string, key: KeyPress): TableCommand | undefined {
	return screenKeyCommand('vms', input, key);
}
