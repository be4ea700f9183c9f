/**
 * The agent's record of one VM, kept as `vm.json` in the VM's state directory. With the host's
 * processes, these files are the whole truth: there is no database.
 */
import {z} from 'zod';
import {DESIRED_STATES, imageNameSchema, networkModeSchema, restartPolicySchema, vmIdSchema, vmSchema} from '../source/protocol/index.js';

/**
 * Where a VM's lifecycle stands, as written to disk (`lifecycle.ts` has the full set of phases: a
 * restart's backoff and a soft reboot are written as `booting`, so an agent restarted meanwhile
 * boots the VM again).
 */
export const RECORD_PHASES = ['creating', 'booting', 'running', 'stopping', 'stopped', 'crashed', 'deleting'] as const;
export type RecordPhase = (typeof RECORD_PHASES)[number];

const vmRecordFields = z.object({
	id: vmIdSchema,
	image: imageNameSchema,
	memoryMb: z.number().int().positive(),
	cpus: z.number().int().positive(),
	createdAt: z.number().int().nonnegative(),
	/**
	 * creating: its first start, overlay or process not yet confirmed (removed if cut short);
	 * booting: booted again (disk kept), not yet confirmed; running: QMP answered; stopping: stop
	 * under way; stopped: disk kept, no process; crashed: ended unasked and not restarted;
	 * deleting: delete under way.
	 */
	phase: z.enum(RECORD_PHASES),
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
	/** What its owner asked for last; records from before the lifecycle ran (or were crashed, see below). */
	desired: z.enum(DESIRED_STATES).default('running'),
	/** Its restart policy; records from before the lifecycle: the default, `on-failure`. */
	restart: restartPolicySchema.default('on-failure'),
	/** Restarts the policy made since the VM last ran steadily. */
	restarts: z.number().int().nonnegative().default(0),
	/** The overlay's virtual size in bytes (null: not recorded, a VM from before `--disk-size`). */
	diskBytes: z.number().int().nonnegative().nullable().default(null),
});

/**
 * A VM record; records from before the lifecycle (no `desired`) read with defaults, and a `running`
 * one of those with an exit was a crashed VM. (Now `exit` is the last exit, kept while the VM runs again.)
 */
export const vmRecordSchema = z.preprocess(
	raw => (typeof raw === 'object' && raw !== null && !('desired' in raw) && 'phase' in raw && raw.phase === 'running' && 'exit' in raw && raw.exit !== null ? {...raw, phase: 'crashed'} : raw),
	vmRecordFields,
);
export type VmRecord = z.output<typeof vmRecordSchema>;

/**
 * A VM that was deleted (or, from agents older than the lifecycle, stopped): its last state, its
 * owner and the start token that made it. Kept (bounded) in the state root's `gone.jsonl`, so a
 * delete or a start retried after the agent restarted still gets this VM back, never a new one.
 */
export const goneRecordSchema = z.object({
	vm: vmSchema,
	owner: z.string().nullable(),
	clientToken: z.string().nullable(),
});
export type GoneRecord = z.infer<typeof goneRecordSchema>;
