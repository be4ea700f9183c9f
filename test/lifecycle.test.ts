/** The VM lifecycle as a pure transition: state × event → new state + actions, read as a specification. */
import {describe, expect, it} from 'vitest';
import {backoffMs, classifyExit, DEFAULT_RESTART_RULES, toVmState, transition, type LifeEvent, type LifeState, type Phase} from '../agent/lifecycle.js';

const rules = {baseDelayMs: 1000, maxDelayMs: 30_000, limit: 5};
const state = (phase: Phase, changes: Partial<LifeState> = {}): LifeState => ({phase, desired: 'running', policy: 'on-failure', restarts: 0, ...changes});
const exited = (exit: 'poweroff' | 'killed' | 'crashed' | 'unknown', ranSteadily = false): LifeEvent => ({type: 'exited', exit, ranSteadily});

describe('transition', () => {
	it.each<[string, LifeState, LifeEvent, Partial<LifeState> | 'same', readonly unknown[]]>([
		// Requests.
		['boot of a stopped VM spawns it, desired running, count reset', state('stopped', {desired: 'stopped', restarts: 2}), {type: 'boot'}, {phase: 'booting', desired: 'running', restarts: 0}, [{kind: 'spawn'}]],
		['boot of a crashed VM spawns it', state('crashed', {restarts: 5}), {type: 'boot'}, {phase: 'booting', restarts: 0}, [{kind: 'spawn'}]],
		['boot during a backoff restarts now', state('backoff', {restarts: 2}), {type: 'boot'}, {phase: 'booting', restarts: 2}, [{kind: 'cancel-restart'}, {kind: 'spawn'}]],
		['boot of a running VM: as it is', state('running'), {type: 'boot'}, 'same', []],
		['stop of a running VM presses the power button', state('running'), {type: 'stop'}, {phase: 'stopping', desired: 'stopped'}, [{kind: 'powerdown'}]],
		['kill of a running VM: SIGKILL', state('running'), {type: 'kill'}, {phase: 'stopping', desired: 'stopped'}, [{kind: 'sigkill'}]],
		['kill during a graceful stop: SIGKILL now', state('stopping', {desired: 'stopped'}), {type: 'kill'}, 'same', [{kind: 'sigkill'}]],
		['stop of a stopped VM: as it is', state('stopped', {desired: 'stopped'}), {type: 'stop'}, 'same', []],
		['stop of a crashed VM makes it stopped', state('crashed'), {type: 'stop'}, {phase: 'stopped', desired: 'stopped'}, [{kind: 'publish', event: 'vm.stopped'}]],
		['stop during a backoff cancels the restart', state('backoff', {restarts: 1}), {type: 'stop'}, {phase: 'stopped', desired: 'stopped', restarts: 0}, [{kind: 'cancel-restart'}, {kind: 'publish', event: 'vm.stopped'}]],
		['hard reboot: system_reset, same process', state('running'), {type: 'reboot', isHard: true}, 'same', [{kind: 'reset'}, {kind: 'publish', event: 'vm.rebooted'}]],
		['soft reboot: the power button, then booted again', state('running'), {type: 'reboot', isHard: false}, {phase: 'rebooting'}, [{kind: 'powerdown'}]],
		['delete of a running VM stops it, then removes it', state('running'), {type: 'delete'}, {phase: 'deleting', desired: 'stopped'}, [{kind: 'powerdown'}, {kind: 'remove'}]],
		['delete of a stopped VM removes it', state('stopped'), {type: 'delete'}, {phase: 'deleting', desired: 'stopped'}, [{kind: 'remove'}]],
		['delete during a backoff cancels the restart', state('backoff'), {type: 'delete'}, {phase: 'deleting', desired: 'stopped'}, [{kind: 'cancel-restart'}, {kind: 'remove'}]],
		['delete of a deleted VM: as it is', state('deleted'), {type: 'delete'}, 'same', []],
		// What the VM does.
		['QMP answered: running, announced', state('booting'), {type: 'ready'}, {phase: 'running'}, [{kind: 'publish', event: 'vm.started'}]],
		['a boot that failed: a crash, restarted after its backoff', state('booting', {restarts: 1}), {type: 'boot-failed'}, {phase: 'backoff', restarts: 2}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: 2000}, {kind: 'publish', event: 'vm.crashed'}]],
		['a boot that failed, policy no: crashed', state('booting', {policy: 'no'}), {type: 'boot-failed'}, {phase: 'crashed'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]],
		['a boot that failed, crash loop: gives up', state('booting', {restarts: 5}), {type: 'boot-failed'}, {phase: 'crashed', restarts: 5}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]],
		['a first start that failed: crashed (the start removes it)', state('creating'), {type: 'boot-failed'}, {phase: 'crashed'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]],
		['the end of a stop: stopped, TAP gone', state('stopping', {desired: 'stopped'}), exited('killed'), {phase: 'stopped'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.stopped'}]],
		['the end of a soft reboot: booted again (its TAP made anew)', state('rebooting'), exited('poweroff'), {phase: 'booting'}, [{kind: 'detach'}, {kind: 'spawn'}]],
		['on-failure, SIGKILL: restart after 1 s', state('running'), exited('killed'), {phase: 'backoff', restarts: 1}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: 1000}, {kind: 'publish', event: 'vm.crashed'}]],
		['on-failure, third crash in a row: restart after 4 s', state('running', {restarts: 2}), exited('crashed'), {phase: 'backoff', restarts: 3}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: 4000}, {kind: 'publish', event: 'vm.crashed'}]],
		['on-failure, a crash after running steadily counts afresh', state('running', {restarts: 4}), exited('crashed', true), {phase: 'backoff', restarts: 1}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: 1000}, {kind: 'publish', event: 'vm.crashed'}]],
		['on-failure, crash loop: gives up', state('running', {restarts: 5}), exited('crashed'), {phase: 'crashed', restarts: 5}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]],
		['on-failure, an adopted VM ended (status unknown): restart', state('running'), exited('unknown'), {phase: 'backoff', restarts: 1}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: 1000}, {kind: 'publish', event: 'vm.crashed'}]],
		['on-failure, the guest powered off: stopped', state('running'), exited('poweroff'), {phase: 'stopped', desired: 'stopped'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.stopped'}]],
		['always, the guest powered off: restart', state('running', {policy: 'always'}), exited('poweroff'), {phase: 'backoff', restarts: 1}, [{kind: 'detach'}, {kind: 'schedule-restart', delayMs: 1000}, {kind: 'publish', event: 'vm.crashed'}]],
		['no, a crash: crashed', state('running', {policy: 'no'}), exited('crashed'), {phase: 'crashed'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]],
		['no, the guest powered off: crashed (nothing restarts it)', state('running', {policy: 'no'}), exited('poweroff'), {phase: 'crashed'}, [{kind: 'detach'}, {kind: 'publish', event: 'vm.crashed'}]],
		['an exit during a delete: the delete carries on', state('deleting'), exited('killed'), 'same', []],
		// Timers and start-up.
		['backoff elapsed: boot', state('backoff', {restarts: 1}), {type: 'backoff-elapsed'}, {phase: 'booting'}, [{kind: 'spawn'}]],
		['backoff elapsed after a stop: nothing', state('stopped'), {type: 'backoff-elapsed'}, 'same', []],
		['start-up, meant to run, no process: boot again', state('booting'), {type: 'recover'}, {phase: 'booting'}, [{kind: 'spawn'}]],
		['everything removed: deleted, announced', state('deleting'), {type: 'removed'}, {phase: 'deleted'}, [{kind: 'publish', event: 'vm.deleted'}]],
	])('%s', (_name, from, event, expected, actions) => {
		const result = transition(from, event, rules);
		expect(result.ok).toBe(true);
		if (!result.ok) {
			return;
		}

		if (expected === 'same') {
			expect(result.state).toBe(from);
		} else {
			expect(result.state).toEqual({...from, ...expected});
		}

		expect(result.actions).toEqual(actions);
	});

	it.each<[string, LifeState, LifeEvent, RegExp]>([
		['reboot of a stopped VM', state('stopped'), {type: 'reboot', isHard: false}, /stopped: boot it \(vm\.boot\) instead/],
		['reboot of a crashed VM', state('crashed'), {type: 'reboot', isHard: true}, /crashed: boot it/],
		['reboot while waiting for a restart', state('backoff'), {type: 'reboot', isHard: false}, /waiting to be restarted/],
		['boot while stopping', state('stopping'), {type: 'boot'}, /stopping: boot it again once it is stopped/],
		['boot while deleting', state('deleting'), {type: 'boot'}, /being deleted/],
		['stop of a deleted VM', state('deleted'), {type: 'stop'}, /deleted/],
	])('refuses %s, saying what works', (_name, from, event, reason) => {
		const result = transition(from, event, rules);
		expect(result.ok).toBe(false);
		expect(result.ok ? '' : result.reason).toMatch(reason);
	});
});

describe('backoff', () => {
	it('doubles from its base up to its cap', () => {
		expect([0, 1, 2, 3, 4, 5, 6, 60].map(attempt => backoffMs(attempt, DEFAULT_RESTART_RULES))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
	});
});

describe('classifyExit', () => {
	it.each([
		['the guest powered off', {code: 0, signal: null}, '', {kind: 'poweroff', description: 'guest powered off'}],
		['SIGTERM (QEMU says so, exits 0)', {code: 0, signal: null}, 'qemu-system-x86_64: terminating on signal 15 from pid 7 (kill)\n', {kind: 'crashed', description: 'terminating on signal 15 from pid 7 (kill)'}],
		['SIGKILL', {code: null, signal: 'SIGKILL'}, '', {kind: 'killed', description: 'killed by SIGKILL'}],
		['SIGSEGV', {code: null, signal: 'SIGSEGV'}, '', {kind: 'crashed', description: 'killed by SIGSEGV'}],
		['an error exit', {code: 1, signal: null}, '', {kind: 'crashed', description: 'exit code 1'}],
		['an adopted VM', null, '', {kind: 'unknown', description: 'process ended (exit status unknown: adopted VM)'}],
	] as const)('%s', (_name, exit, log, expected) => {
		expect(classifyExit(exit, log)).toEqual(expected);
	});
});

describe('toVmState', () => {
	it.each([
		['creating', 'starting'],
		['booting', 'starting'],
		['backoff', 'starting'],
		['rebooting', 'starting'],
		['running', 'running'],
		['stopped', 'stopped'],
		['crashed', 'crashed'],
		['deleted', 'deleted'],
	] as const)('%s is shown as %s', (phase, vmState) => {
		expect(toVmState(phase)).toBe(vmState);
	});
});
