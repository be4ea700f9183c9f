/** What the TUI can ask of the fleet; implemented over the broker by the feed, faked in UI tests. */
import type {HostStatus, MigrationResult, NetworkMode, RestartPolicy, Vm} from '../protocol/index.js';
import type {ImageChoice, Target} from '../state/view.js';

export type StartRequest = {
	readonly image: string;
	readonly host?: string;
	readonly memoryMb?: number;
	readonly cpus?: number;
	readonly network?: NetworkMode;
	readonly restart?: RestartPolicy;
};

export type FleetActions = {
	/** Runs a list round now. */
	refresh(): void;
	images(): Promise<ImageChoice[]>;
	start(request: StartRequest): Promise<Vm>;
	stop(target: Target, options: {readonly isKill: boolean}): Promise<Vm>;
	/** Boots a stopped VM again on its host. */
	boot(target: Target): Promise<Vm>;
	reboot(target: Target, options: {readonly isHard: boolean}): Promise<Vm>;
	/** Deletes a VM: its disk, seed, TAP, lease and record go. */
	delete(target: Target): Promise<Vm>;
	consoleTail(target: Target): Promise<string>;
	/** Live-migrates a running VM to host `to`. */
	migrate(target: Target, to: string): Promise<MigrationResult>;
	/** Cordons (no new VMs) or uncordons a host; answers its status. */
	cordon(host: string, options: {readonly cordoned: boolean}): Promise<HostStatus>;
	/** Cordons a host, then migrates its running VMs away one by one (each told to `onProgress`); answers a summary, fails naming what stays. */
	drain(host: string, onProgress: (line: string) => void): Promise<string>;
};

/** Shown in the header: where the TUI is connected. */
export type FeedInfo = {readonly brokerUrl: string; readonly namespace: string; readonly refreshMs: number};
