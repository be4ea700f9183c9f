/**
 * What the agent does when a VM's process ends unasked: `no` leaves it `crashed`; `on-failure`
 * (default) boots it again unless the guest powered itself off (then it is `stopped`); `always`
 * boots it again in both cases. Restarts back off exponentially and give up after a crash loop.
 *
 * A file of its own, without zod: the TUI's start dialog, in its first frame's code, offers them.
 */
export const RESTART_POLICIES = ['no', 'on-failure', 'always'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];
