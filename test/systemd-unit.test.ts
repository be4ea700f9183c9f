/** The agent's systemd unit: what it says, and that systemd itself accepts it (systemd-analyze verify, where installed). */
import {execFile} from 'node:child_process';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {describe, expect, it} from 'vitest';
import {AGENT_BIN} from './helpers/cloud.js';
import {renderSystemdUnit, systemdWord} from '../agent/systemd-unit.js';

const run = promisify(execFile);

/** `[Section]` → key → values, as systemd reads a unit (keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
	const sections = new Map<string, Map<string, string[]>>();
	let current: Map<string, string[]> | undefined;
	for (const line of text.split('\n')) {
		const header = /^\[(\w+)\]$/.exec(line);
		if (header) {
			current = new Map();
			sections.set(header[1]!, current);
		} else if (line !== '' && !line.startsWith('#')) {
			const [key, ...rest] = line.split('=');
			current!.set(key!, [...(current!.get(key!) ?? []), rest.join('=')]);
		}
	}

	return sections;
}

describe('kloud-agent systemd-unit', () => {
	it('prints a unit that keeps VMs across agent restarts, restarts a failed agent and starts after the network and the broker', async () => {
		const {stdout} = await run(process.execPath, [AGENT_BIN, 'systemd-unit', '--state-dir', '/var/lib/kloud/state', '--host-id', 'host-a', '--quota-default', 'vms:4,cpus:8']);
		const unit = parseUnit(stdout);
		expect(unit.get('Service')?.get('Type')).toEqual(['simple']);
		expect(unit.get('Service')?.get('KillMode')).toEqual(['process']);
		expect(unit.get('Service')?.get('Restart')).toEqual(['on-failure']);
		expect(unit.get('Unit')?.get('After')?.[0]?.split(' ')).toEqual(expect.arrayContaining(['network-online.target', 'rabbitmq-server.service']));
		expect(unit.get('Unit')?.get('Wants')).toEqual(['network-online.target']);
		expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
		expect(unit.get('Service')?.get('ExecStart')).toEqual([`${process.execPath} ${AGENT_BIN} --state-dir /var/lib/kloud/state --host-id host-a --quota-default vms:4,cpus:8`]);
	});

	it('quotes flags so systemd reads them back unchanged', () => {
		expect(systemdWord('plain/path-1.0')).toBe('plain/path-1.0');
		expect(systemdWord('two words')).toBe('"two words"');
		expect(systemdWord('amqp://u:p%40ss@h')).toBe('amqp://u:p%%40ss@h');
		expect(systemdWord('$HOME')).toBe('"$$HOME"');
		expect(systemdWord('say "hi"')).toBe('"say \\"hi\\""');
		expect(systemdWord('')).toBe('""');
	});

	it('is accepted by systemd-analyze verify', async () => {
		const analyze = await run('systemd-analyze', ['--version']).catch(() => undefined);
		if (!analyze) {
			console.warn('systemd-analyze not installed: the unit is not verified by systemd');
			return;
		}

		const dir = await mkdtemp(join(tmpdir(), 'kloud-unit-'));
		try {
			const path = join(dir, 'kloud-agent.service');
			await writeFile(path, renderSystemdUnit({command: [process.execPath, AGENT_BIN], flags: ['--state-dir', '/var/lib/kloud state', '--amqp', 'amqp://u:$x%@h']}));
			const result = await run('systemd-analyze', ['verify', path]).then(
				output => ({code: 0, stderr: output.stderr}),
				(error: {code?: number; stderr?: string}) => ({code: error.code ?? 1, stderr: error.stderr ?? ''}),
			);
			// Problems of this unit name the unit file; others (the host's own units, no systemd as PID 1) do not.
			const ours = result.stderr.split('\n').filter(line => line.includes('kloud-agent.service'));
			expect(ours).toEqual([]);
		} finally {
			await rm(dir, {recursive: true, force: true});
		}
	});
});
