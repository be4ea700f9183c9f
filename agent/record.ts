/**
 * The agent's record of one VM, kept as `vm.json` in the VM's state directory. With the host's
 * processes, these files are the whole truth: there is no database.
 */
import {z} from 'zod';
import {imageNameSchema, networkModeSchema, vmIdSchema, vmSchema} from '../source/protocol/index.js';

export const vmRecordSchema = z.object({
	id: vmIdSchema,
	image: imageNameSchema,
	memoryMb: z.number().int().positive(),
	cpus: z.number().int().positive(),
	createdAt: z.number().int().nonnegative(),
	/** creating: overlay or process not yet confirmed; running: QMP answered; stopping: stop under way. */
	phase: z.enum(['creating', 'running', 'stopping']),
	startedAt: z.number().int().nonnegative().nullable(),
	clientToken: z.string().nullable(),
	/** Set once the QEMU process ended without being asked to. */
	exit: z.string().nullable(),
	/** How the VM is networked; records from before networking had no NIC. */
	network: networkModeSchema.default('none'),
	/** Its NIC's MAC (null with network `none`); with `private`/`public` its TAP is named after the VM. */
	mac: z.string().nullable().default(null),
	/** The tenant whose start made it (the start's broker-validated `userId`); records from before tenants had none. */
	owner: z.string().nullable().default(null),
});
export type VmRecord = z.infer<typeof vmRecordSchema>;

/**
 * A VM that was stopped: its last state, its owner and the start token that made it. Kept (bounded)
 * in the state root's `gone.jsonl`, so a stop or a start retried after the agent restarted still
 * gets this VM back, never a new one.
 */
export const goneRecordSchema = z.object({
	vm: vmSchema,
	owner: z.string().nullable(),
	clientToken: z.string().nullable(),
});
export type GoneRecord = z.infer<typeof goneRecordSchema>;
