/** Enter: every field of one VM, and the tail of its serial console. */
import {Box, Text} from 'ink';
import type {Vm} from '../protocol/index.js';
import {describeDisk, describeState, formatDuration} from '../format.js';
import {stateColor} from './theme.js';

export type ConsoleView = {readonly text: string | null; readonly error: string | null};

export function DetailView({vm, consoleView, height, width}: {readonly vm: Vm | undefined; readonly consoleView: ConsoleView; readonly height: number; readonly width: number}) {
	if (!vm) {
		return <Text dimColor>That VM is gone.</Text>;
	}

	const fields: Array<[string, string]> = [
		['id', vm.id],
		['host', vm.host],
		['image', vm.image],
		['state', describeState(vm)],
		['ip', vm.ip ?? '-'],
		['mac', vm.mac ?? '-'],
		['memory', `${vm.memoryMb} MB`],
		['cpus', String(vm.cpus)],
		['pid', vm.pid === null ? '-' : String(vm.pid)],
		['desired', vm.desired ?? '-'],
		['restart', vm.restart ? `${vm.restart}${vm.restarts ? ` (${vm.restarts.count} of ${vm.restarts.limit} restarts made)` : ''}` : '-'],
		['disk', vm.disk ? `${describeDisk(vm)} (used/size)` : '-'],
		['created', new Date(vm.createdAt).toISOString()],
		['uptime', formatDuration(vm.uptimeSeconds)],
	];
	const consoleHeight = Math.max(1, height - fields.length - 2);
	const lines = (consoleView.text ?? '')
		.replace(/\r/g, '')
		// Drop terminal escape sequences a guest may print: they would move our cursor.
		.replace(/\u001B\[[\d;?]*[A-Za-z]/g, '')
		.split('\n')
		.filter((line, index, all) => line !== '' || index < all.length - 1)
		.slice(-consoleHeight);
	return (
		<Box flexDirection="column" width={width}>
			{fields.map(([name, value]) => (
				<Text key={name} wrap="truncate">
					<Text bold>{name.padEnd(9)}</Text>
					{name === 'state' ? <Text color={stateColor(vm.state)}>{value}</Text> : value}
				</Text>
			))}
			<Text bold>console (tail)</Text>
			{consoleView.error ? (
				<Text dimColor>{consoleView.error}</Text>
			) : consoleView.text === null ? (
				<Text dimColor>loading…</Text>
			) : lines.length === 0 || (lines.length === 1 && lines[0] === '') ? (
				<Text dimColor>(the console is empty)</Text>
			) : (
				lines.map((line, index) => (
					// eslint-disable-next-line react/no-array-index-key
					<Text key={index} wrap="truncate">
						{line || ' '}
					</Text>
				))
			)}
		</Box>
	);
}
