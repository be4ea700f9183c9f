/**
 * Enter: every field of one VM, and its serial console as a scrollable tail (the state and keys are
 * `state/scrollback.ts` and `state/detail-keys.ts`): it follows the guest at the bottom, holds still
 * scrolled up, and highlights a `/` search's matches.
 */
import {Box, Text} from 'ink';
import type {ReactElement} from 'react';
import type {Vm} from '../protocol/index.js';
import {describeDisk, describeState, formatDuration} from '../format.js';
import {matchRanges, visibleLines, type Scrollback} from '../state/scrollback.js';
import {color, stateColor} from './theme.js';

export type ConsoleView = {readonly text: string | null; readonly error: string | null};

/** The VM's fields shown above the console. */
const FIELD_COUNT = 14;

/** How many console lines fit in a detail view `height` lines tall (the fields and a title above them). */
export function detailConsoleRows(height: number): number {
	return Math.max(1, height - FIELD_COUNT - 2);
}

export type DetailViewProps = {
	readonly vm: Vm | undefined;
	readonly consoleView: ConsoleView;
	/** The console's lines (`consoleLines` of its text). */
	readonly lines: readonly string[];
	readonly scrollback: Scrollback;
	readonly height: number;
	readonly width: number;
};

export function DetailView({vm, consoleView, lines, scrollback, height, width}: DetailViewProps) {
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
	const rows = detailConsoleRows(height);
	const {from, to, offset} = visibleLines(scrollback, {lines, height: rows});
	const title = offset === 0 ? 'console (tail)' : `console (lines ${from + 1}–${to} of ${lines.length}, held; G: back to the tail)`;
	return (
		<Box flexDirection="column" width={width}>
			{fields.map(([name, value]) => (
				<Text key={name} wrap="truncate">
					<Text bold>{name.padEnd(9)}</Text>
					{name === 'state' ? <Text color={stateColor(vm.state)}>{value}</Text> : value}
				</Text>
			))}
			<Text bold wrap="truncate">
				{title}
			</Text>
			{consoleView.error ? (
				<Text dimColor>{consoleView.error}</Text>
			) : consoleView.text === null ? (
				<Text dimColor>loading…</Text>
			) : lines.length === 0 || (lines.length === 1 && lines[0] === '') ? (
				<Text dimColor>(the console is empty)</Text>
			) : (
				lines.slice(from, to).map((line, index) => (
					// eslint-disable-next-line react/no-array-index-key
					<ConsoleLine key={index} line={line} query={scrollback.query} isCurrent={from + index === scrollback.match} />
				))
			)}
		</Box>
	);
}

/** One console line, a search's matches in it shown in reverse (the current match's line in yellow too). */
function ConsoleLine({line, query, isCurrent}: {readonly line: string; readonly query: string; readonly isCurrent: boolean}) {
	const ranges = matchRanges(line, query);
	if (ranges.length === 0) {
		return <Text wrap="truncate">{line || ' '}</Text>;
	}

	const parts: ReactElement[] = [];
	let at = 0;
	for (const [start, end] of ranges) {
		parts.push(<Text key={`t${start}`}>{line.slice(at, start)}</Text>, <Text key={`m${start}`} inverse color={isCurrent ? color('yellow') : undefined}>{line.slice(start, end)}</Text>);
		at = end;
	}

	parts.push(<Text key="rest">{line.slice(at)}</Text>);
	return (
		<Text wrap="truncate">
			{isCurrent ? <Text bold>{parts}</Text> : parts}
		</Text>
	);
}
