/**
 * The tutorial's own message formats (unversioned, on its `vm-queue`), served exactly as its
 * `control.py` expects, so that client works unchanged against a kloud agent.
 */
import {randomBytes} from 'node:crypto';
import {z} from 'zod';
import type {TutorialDelivery} from '../source/broker/agent-endpoint.js';
import {imageNameSchema, vmIdSchema, type StartBody, type Vm} from '../source/protocol/index.js';
import {tutorialStartToken} from './start-token.js';

type Outcome<T> = {readonly ok: true; readonly value: T} | {readonly ok: false; readonly reason: string};

export type TutorialHost = {
	/** Starts a VM, or answers with the one its client token made (looked for across the fleet when `isRepeat`). */
	startOnce(body: StartBody, options: {readonly isRepeat: boolean}): Promise<Outcome<Vm>>;
	stop(vmId: string, options: {readonly isKill: boolean; readonly graceSeconds: number}): Promise<Outcome<Vm>>;
	vms(): Vm[];
	readonly config: {readonly graceSeconds: number};
};

const tutorialMessage = z.discriminatedUnion('command', [
	z.object({command: z.literal('start-vm'), options: z.object({image: z.string()})}),
	z.object({command: z.literal('list-vms')}),
	z.object({command: z.literal('stop-vm'), options: z.object({'vm-id': z.string(), kill: z.boolean().optional()})}),
]);

/** How many starts of messages without an id of their own are remembered until their ack is known to have arrived. */
const UNSETTLED_MEMORY = 1024;

/**
 * The starts of tutorial messages that carry nothing unique (the tutorial's `start-vm`: no message
 * id, no reply address), by their content token, whose delivery is not known to be settled. Two
 * such messages are indistinguishable, so a redelivered one may take any of them: it claims one,
 * which it gives back if its own delivery does not settle either.
 */
export class UnsettledStarts {
	readonly #byToken = new Map<string, Array<Promise<Outcome<Vm>>>>();
	#size = 0;

	/** A start made for a first delivery: claimable until that delivery settles. */
	track(token: string, attempt: Promise<Outcome<Vm>>, settled: Promise<boolean>): void {
		this.add(token, attempt, 'last');
		void settled.then(isSettled => {
			if (isSettled) {
				this.remove(token, attempt);
			}
		});
	}

	/** For a redelivery: a start of the same content whose delivery did not settle, if any. */
	claim(token: string, settled: Promise<boolean>): Promise<Outcome<Vm>> | undefined {
		const attempt = this.#byToken.get(token)?.[0];
		if (attempt) {
			this.remove(token, attempt);
			void settled.then(isSettled => {
				if (!isSettled) {
					this.add(token, attempt, 'first');
				}
			});
		}

		return attempt;
	}

	get size(): number {
		return this.#size;
	}

	private add(token: string, attempt: Promise<Outcome<Vm>>, where: 'first' | 'last'): void {
		const list = this.#byToken.get(token) ?? [];
		if (where === 'first') {
			list.unshift(attempt);
		} else {
			list.push(attempt);
		}

		this.#byToken.set(token, list);
		this.#size++;
		if (this.#size > UNSETTLED_MEMORY) {
			const [oldestToken, oldest] = this.#byToken.entries().next().value!;
			this.remove(oldestToken, oldest[0]!);
		}
	}

	private remove(token: string, attempt: Promise<Outcome<Vm>>): void {
		const list = this.#byToken.get(token);
		const index = list?.indexOf(attempt) ?? -1;
		if (!list || index < 0) {
			return;
		}

		list.splice(index, 1);
		this.#size--;
		if (list.length === 0) {
			this.#byToken.delete(token);
		}
	}
}

/**
 * A start-vm, made idempotent: a message with an id of its own (`messageId` or `correlationId`)
 * gets a token derived from it, like a kloud start without a client token; one without (the
 * tutorial's own) gets its content token made unique by a nonce, and a redelivery claims a start of
 * the same content whose delivery never settled.
 */
async function startVm(image: string, content: Uint8Array, host: TutorialHost, delivery: TutorialDelivery, unsettled: UnsettledStarts): Promise<Outcome<Vm>> {
	const {token, isUnique} = tutorialStartToken({...delivery, body: content});
	if (isUnique) {
		return host.startOnce({image, clientToken: token}, {isRepeat: delivery.isRepeat});
	}

	const claimed = delivery.isRepeat ? unsettled.claim(token, delivery.settled) : undefined;
	if (claimed) {
		return claimed;
	}

	const attempt = host.startOnce({image, clientToken: `${token}:${randomBytes(6).toString('base64url')}`}, {isRepeat: false});
	unsettled.track(token, attempt, delivery.settled);
	return attempt;
}

/** Returns the JSON to reply with (sent only if the message had a reply address), or undefined. */
export async function serveTutorial(content: Uint8Array, host: TutorialHost, delivery: TutorialDelivery, unsettled: UnsettledStarts): Promise<unknown> {
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

			const result = await startVm(image.data, content, host, delivery, unsettled);
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
