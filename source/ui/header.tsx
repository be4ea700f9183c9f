/** Two lines on top: where we are connected and how fresh the table is; then stale/down hosts or the disconnected banner. */
import {Box, Text} from 'ink';
import type {ReactElement} from 'react';
import {DROP_NOTICE_MS, hostHealth, type FleetState} from '../state/fleet.js';
import {SCREEN_TITLES, type Screen} from '../state/table-keys.js';
import type {FeedInfo} from './actions.js';
import {formatAge} from './format-age.js';
import {color} from './theme.js';

export type HeaderProps = {
	readonly fleet: FleetState;
	readonly info: FeedInfo;
	readonly isPaused: boolean;
	readonly vmCount: number;
	readonly shownCount: number;
	readonly width: number;
	/** The list on screen: named in the header unless it is the VM table. */
	readonly screen?: Screen;
};

export function Header({fleet, info, isPaused, vmCount, shownCount, width, screen = 'vms'}: HeaderProps) {
	const hosts = [...fleet.hosts.values()];
	const answered = hosts.filter(host => hostHealth(host, fleet.now) === 'up').length;
	const {connection} = fleet;
	const connectionText =
		connection.status === 'connected'
			? `● connected${connection.broker === undefined ? '' : ` to ${connection.broker}`}`
			: connection.status === 'connecting'
				? '○ connecting'
				: '✕ disconnected';
	const connectionColor = connection.status === 'connected' ? 'green' : connection.status === 'connecting' ? 'yellow' : 'red';
	const age = fleet.lastRoundAt === null ? 'never' : `${formatAge(fleet.now - fleet.lastRoundAt)} ago`;
	const counts = shownCount === vmCount ? `${vmCount} VMs` : `${shownCount}/${vmCount} VMs`;

	let second: ReactElement | null = null;
	if (connection.status === 'disconnected') {
		const retry = connection.retryAt === null ? 'not retrying' : `retrying in ${formatAge(Math.max(0, connection.retryAt - fleet.now))}`;
		second = (
			<Text color={color('red')} bold wrap="truncate">
				⚠ broker connection lost ({connection.error}), {retry}; showing the last table
			</Text>
		);
	} else {
		const troubled = hosts
			.map(host => ({host, health: hostHealth(host, fleet.now)}))
			.filter(entry => entry.health !== 'up')
			.sort((a, b) => a.host.id.localeCompare(b.host.id))
			.map(({host, health}) =>
				health === 'down'
					? `${host.id} down`
					: `${host.id} stale (answered ${host.lastAnsweredAt === null ? 'never' : `${formatAge(fleet.now - host.lastAnsweredAt)} ago`})`,
			);
		const drop = fleet.lastDrop;
		if (drop?.backAt !== null && drop !== null && fleet.now - drop.backAt < DROP_NOTICE_MS) {
			troubled.unshift(`↻ broker connection lost ${formatAge(fleet.now - drop.lostAt)} ago (${drop.error}), back after ${formatAge(drop.backAt - drop.lostAt)}`);
		}

		if (troubled.length > 0) {
			second = (
				<Text color={color('yellow')} wrap="truncate">
					{troubled.join(' · ')}
				</Text>
			);
		}
	}

	return (
		<Box flexDirection="column" width={width}>
			<Text wrap="truncate">
				<Text bold>kloud{screen === 'vms' ? '' : ` [${SCREEN_TITLES[screen]}]`}</Text>
				{isPaused ? <Text inverse> PAUSED </Text> : null} <Text color={color(connectionColor)}>{connectionText}</Text> · hosts {answered}/{hosts.length} ·{' '}
				{counts} · refreshed {age} · {info.brokerUrl} ns {info.namespace}
			</Text>
			{second ?? <Text> </Text>}
		</Box>
	);
}
