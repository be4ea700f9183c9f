/** The y/N question before a stop, kill, reboot or delete: a delete names what is lost. */
import {Text} from 'ink';
import type {Vm} from '../protocol/index.js';
import type {ConfirmAction, Target} from '../state/view.js';
import {color} from './theme.js';

function what(targets: readonly Target[]): string {
	return targets.length === 1 ? `${targets[0]!.id} on ${targets[0]!.host}` : `${targets.length} VMs`;
}

/** The question asked before `action` on `targets` (`vms`: the fleet, to name a deleted VM's IP). */
export function confirmQuestion(action: ConfirmAction, targets: readonly Target[], vms: ReadonlyMap<string, Vm>): string {
	switch (action) {
		case 'kill': {
			return `Kill (SIGKILL, no shutdown) ${what(targets)}? [y/N]`;
		}

		case 'stop': {
			return `Stop (ACPI power-off, then kill after the grace period) ${what(targets)}? [y/N]`;
		}

		case 'reboot': {
			return `Reboot ${what(targets)}? [y: ACPI reboot, h: hard reset, N]`;
		}

		case 'delete': {
			if (targets.length === 1) {
				const ip = vms.get(targets[0]!.id)?.ip;
				return `delete ${what(targets)}: its disk, seed and IP${ip ? ` ${ip}` : ''} are lost [y/N]`;
			}

			return `delete ${what(targets)}: their disks, seeds and IPs are lost [y/N]`;
		}
	}
}

export function ConfirmBar({action, targets, vms}: {readonly action: ConfirmAction; readonly targets: readonly Target[]; readonly vms: ReadonlyMap<string, Vm>}) {
	return (
		<Text color={color(action === 'kill' || action === 'delete' ? 'red' : 'yellow')} bold wrap="truncate">
			{confirmQuestion(action, targets, vms)}
		</Text>
	);
}
