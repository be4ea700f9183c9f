/** `4`: the audit timeline, newest first: who did what, crashes with their exit, hosts down and back, group changes. */
import type {TimelineEntry} from '../state/timeline.js';
import {Text} from 'ink';
import {fit, formatAge} from './format-age.js';
import {ListFrame, type ListWindow} from './list-frame.js';
import {color} from './theme.js';

/** The time of day (UTC, as the agents' logs), so lines can be matched with them. */
function clock(at: number): string {
	return new Date(at).toISOString().slice(11, 19);
}

export function EventsView({rows, window, now}: {readonly rows: readonly TimelineEntry[]; readonly window: ListWindow; readonly now: number}) {
	return (
		<ListFrame
			header={`  ${fit('TIME UTC', 8)} ${fit('AGO', 4, {alignRight: true})} ${fit('KIND', 7)} WHAT`}
			rows={rows}
			window={window}
			rowKey={(_entry, index) => String(index)}
			renderRow={entry => (
				<>
					{clock(entry.at)} {fit(formatAge(now - entry.at), 4, {alignRight: true})} {fit(entry.kind, 7)}{' '}
					<Text color={entry.isProblem ? color('red') : undefined}>{entry.text}</Text>
				</>
			)}
		/>
	);
}
