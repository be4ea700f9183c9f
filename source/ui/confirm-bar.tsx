/** The y/N question before a stop or kill. */
import {Text} from 'ink';
import type {Target} from '../state/view.js';
import {color} from './theme.js';

export function ConfirmBar({action, targets}: {readonly action: 'stop' | 'kill'; readonly targets: readonly Target[]}) {
	const what = targets.length === 1 ? `${targets[0]!.id} on ${targets[0]!.host}` : `${targets.length} VMs`;
	const verb = action === 'kill' ? 'Kill (SIGKILL, no shutdown)' : 'Stop (ACPI power-off, then kill after the grace period)';
	return (
		<Text color={color(action === 'kill' ? 'red' : 'yellow')} bold wrap="truncate">
			{verb} {what}? [y/N]
		</Text>
	);
}
