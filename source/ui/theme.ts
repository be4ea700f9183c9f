/** Colours, or none when NO_COLOR is set (https://no-color.org): meaning never rests on colour alone. */
import type {VmState} from '../protocol/index.js';

export const isColorEnabled = (): boolean => !('NO_COLOR' in process.env && process.env.NO_COLOR !== '');

const STATE_COLORS: Record<VmState, string> = {
	starting: 'cyan',
	running: 'green',
	stopping: 'yellow',
	stopped: 'gray',
	crashed: 'red',
	deleting: 'yellow',
	deleted: 'gray',
};

export function stateColor(state: VmState): string | undefined {
	return isColorEnabled() ? STATE_COLORS[state] : undefined;
}

export function color(name: string): string | undefined {
	return isColorEnabled() ? name : undefined;
}
