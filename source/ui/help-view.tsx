/** `?`: every key. */
import {Box, Text} from 'ink';

const HELP: Array<[string, string]> = [
	['↑ ↓  j k', 'move the selection'],
	['PgUp PgDn  g G', 'page up / down, first / last row'],
	['space', 'mark or unmark the row (b, x, K, R and D then act on every marked VM)'],
	['n', 'new VM: pick an image, Tab for host, memory, cpus, network and restart (←/→), Enter to start'],
	['b', 'boot a stopped VM again (same id, MAC, disk and seed)'],
	['x', 'graceful stop; the VM is kept, stopped, with its disk (asks y/N)'],
	['K', 'kill at once; the VM is kept, stopped (asks y/N)'],
	['R', 'reboot (asks: y ACPI reboot, h hard reset)'],
	['D', 'delete: its disk, seed and IP are lost (asks y/N)'],
	['/', 'filter: type to narrow the rows, Enter keeps it, Esc clears it'],
	['s  S', 'sort by the next column / reverse the order'],
	['Enter', 'details of the selected VM; its console follows the boot'],
	['c', 'the live console of the selected VM, full screen (you type into it); ctrl-] back to the table'],
	['p', 'pause / resume live updates'],
	['r', 'refresh now'],
	['esc', 'clear marks and the message line'],
	['q  ctrl-c', 'quit'],
];

export function HelpView() {
	return (
		<Box flexDirection="column" borderStyle="round" paddingX={1}>
			<Text bold>kloud-tui keys</Text>
			{HELP.map(([keys, meaning]) => (
				<Text key={keys} wrap="truncate">
					<Text bold>{keys.padEnd(16)}</Text>
					{meaning}
				</Text>
			))}
		</Box>
	);
}
