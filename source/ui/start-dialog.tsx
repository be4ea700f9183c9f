/** `n`: pick an image the agents advertise (and see which hosts have it); Tab reaches host, memory, cpus, network, restart. */
import {Box, Text} from 'ink';
import type {StartDialog as StartDialogState} from '../state/view.js';
import {color} from './theme.js';

function Field({label, value, isActive, hint}: {readonly label: string; readonly value: string; readonly isActive: boolean; readonly hint: string}) {
	return (
		<Text wrap="truncate">
			<Text bold={isActive}>{isActive ? '› ' : '  '}{label.padEnd(8)}</Text>
			<Text inverse={isActive}>{value || ' '}</Text>
			{value ? null : <Text dimColor> {hint}</Text>}
		</Text>
	);
}

export function StartDialog({dialog, height}: {readonly dialog: StartDialogState; readonly height: number}) {
	const {images} = dialog;
	const listHeight = Math.max(1, height - 9);
	const first = Math.max(0, Math.min(dialog.imageIndex - listHeight + 1, (images?.length ?? 0) - listHeight));
	return (
		<Box flexDirection="column" borderStyle="round" paddingX={1}>
			<Text bold>Start a VM</Text>
			{images === null ? (
				<Text dimColor>{dialog.error ? '' : 'asking the hosts for their images…'}</Text>
			) : images.length === 0 ? (
				<Text color={color('yellow')}>No host offers any image.</Text>
			) : (
				images.slice(first, first + listHeight).map((image, offset) => {
					const index = first + offset;
					const isSelected = index === dialog.imageIndex;
					return (
						<Text key={image.name} inverse={isSelected && dialog.field === 'image'} bold={isSelected} wrap="truncate">
							{isSelected ? '› ' : '  '}
							{image.name.padEnd(20)} <Text dimColor={!isSelected}>on {image.hosts.join(', ')}</Text>
						</Text>
					);
				})
			)}
			{dialog.error ? <Text color={color('red')}>{dialog.error}</Text> : null}
			<Field label="host" value={dialog.host} isActive={dialog.field === 'host'} hint="any host with capacity" />
			<Field label="memory" value={dialog.memory} isActive={dialog.field === 'memory'} hint="MB, host default" />
			<Field label="cpus" value={dialog.cpus} isActive={dialog.field === 'cpus'} hint="host default" />
			<Field label="network" value={dialog.network} isActive={dialog.field === 'network'} hint="host default (←/→: private, public, none, user)" />
			<Field label="restart" value={dialog.restart} isActive={dialog.field === 'restart'} hint="on-failure (←/→: no, on-failure, always)" />
		</Box>
	);
}
