/**
 * The tutorial's own message formats (unversioned, on its `vm-queue`), served exactly as its
 * `control.py` expects, so that client works unchanged against a kloud agent.
 */
import {z} from 'zod';
import {imageNameSchema, vmIdSchema, type StartBody, type Vm} from '../source/protocol/index.js';

type Outcome<T> = {readonly ok: true; readonly value: T} | {readonly ok: false; readonly reason: string};

export type TutorialHost = {
	start(body: StartBody): Promise<Outcome<Vm>>;
	stop(vmId: string, options: {readonly isKill: boolean; readonly graceSeconds: number}): Promise<Outcome<Vm>>;
	vms(): Vm[];
	readonly config: {readonly graceSeconds: number};
};

const tutorialMessage = z.discriminatedUnion('command', [
	z.object({command: z.literal('start-vm'), options: z.object({image: z.string()})}),
	z.object({command: z.literal('list-vms')}),
	z.object({command: z.literal('stop-vm'), options: z.object({'vm-id': z.string(), kill: z.boolean().optional()})}),
]);

/** Returns the JSON to reply with (sent only if the message had a reply address), or undefined. */
export async function serveTutorial(content: Uint8Array, host: TutorialHost): Promise<unknown> {
	let json: unknown;
	try {
		json = JSON.parse(new TextDecoder().decode(content));
	} catch {
		return {status: 'error', reason: 'message is not JSON'};
	}

	const parsed = tutorialMessage.safeParse(json);
	if (!parsed.success) {
		const command = (json as {command?: unknown} | null)?.command;
		return {status: 'error', reason: typeof command === 'string' ? `unknown or malformed command "${command}"` : 'message has no command'};
	}

	const message = parsed.data;
	switch (message.command) {
		case 'list-vms': {
			return host.vms().filter(vm => vm.state !== 'stopped').map(vm => vm.id);
		}

		case 'start-vm': {
			const image = imageNameSchema.safeParse(message.options.image);
			if (!image.success) {
				return {status: 'error', reason: image.error.issues[0]?.message ?? 'invalid image name'};
			}

			const result = await host.start({image: image.data});
			return result.ok ? {status: 'started', 'vm-id': result.value.id} : {status: 'error', reason: result.reason};
		}

		case 'stop-vm': {
			const vmId = message.options['vm-id'];
			if (!vmIdSchema.safeParse(vmId).success) {
				return {status: 'error', reason: `VM "${vmId}" does not exist`};
			}

			const isKill = message.options.kill ?? false;
			const result = await host.stop(vmId, {isKill, graceSeconds: host.config.graceSeconds});
			if (!result.ok) {
				return {status: 'error', reason: result.reason};
			}

			return {status: isKill ? 'killed' : 'stopped', 'vm-id': vmId};
		}
	}
}
