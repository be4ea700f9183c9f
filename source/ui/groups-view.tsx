/** `3`: every group from the groups stream, with its members as the fleet shows them and its latest scaling. */
import {Text} from 'ink';
import {scalingOf, type GroupRow} from '../state/groups.js';
import {fit, formatAge} from './format-age.js';
import {ListFrame, type ListWindow} from './list-frame.js';
import {color} from './theme.js';

const HEADER = `  ${fit('NAME', 12)} ${fit('IMAGE', 10)} ${fit('DESIRED', 7, {alignRight: true})} ${fit('RUN', 4, {alignRight: true})} ${fit('HEALTHY', 7, {alignRight: true})} ${fit('MIN', 4, {alignRight: true})} ${fit('MAX', 4, {alignRight: true})}  LAST SCALING`;

function lastScaling(row: GroupRow, now: number): string {
	const {lastScale, stored} = row.group;
	const onLoad = scalingOf(stored);
	// The controller's scaling on load says why (the load it measured); a size an operator set, who set it.
	if (onLoad && (!lastScale || onLoad.at >= lastScale.at)) {
		return `${onLoad.from} → ${onLoad.to} ${formatAge(now - onLoad.at)} ago: cpu ${Math.round(onLoad.cpuPercent)}% over ${onLoad.members} (${onLoad.reason})`;
	}

	if (lastScale) {
		return `${lastScale.from} → ${lastScale.to}${lastScale.by ? ` by ${lastScale.by}` : ''} ${formatAge(now - lastScale.at)} ago`;
	}

	return `created ${stored.spec.size}${stored.by ? ` by ${stored.by}` : ''} ${formatAge(now - stored.ts)} ago`;
}

export function GroupsView({rows, window, now}: {readonly rows: readonly GroupRow[]; readonly window: ListWindow; readonly now: number}) {
	return (
		<ListFrame
			header={HEADER}
			rows={rows}
			window={window}
			rowKey={row => row.name}
			renderRow={row => (
				<>
					{fit(row.name, 12)} {fit(row.image, 10)} {fit(String(row.desired), 7, {alignRight: true})} {fit(String(row.running), 4, {alignRight: true})}{' '}
					<Text color={color(row.healthy < row.desired ? 'yellow' : 'green')}>{fit(String(row.healthy), 7, {alignRight: true})}</Text> {fit(String(row.min), 4, {alignRight: true})}{' '}
					{fit(String(row.max), 4, {alignRight: true})}  {lastScaling(row, now)}
				</>
			)}
		/>
	);
}
