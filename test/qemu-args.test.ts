import {describe, it, expect} from 'vitest';
import {QEMU_BINARY, QemuSpecError, qemuArgs, type QemuSpec} from '../agent/qemu-args.js';
import {vmPaths} from '../agent/vm-paths.js';

const spec = (overrides: Partial<QemuSpec> = {}): QemuSpec => {
	const id = overrides.id ?? 'vm-abcdefgh';
	return {id, paths: vmPaths('/var/lib/kloud', 'vm-abcdefgh'), memoryMb: 256, cpus: 1, accel: 'tcg', ...overrides};
};

/** The value following `flag`, for flags that appear once. */
const valueOf = (args: readonly string[], flag: string): string | undefined => {
	const indexes = args.flatMap((arg, index) => (arg === flag ? [index] : []));
	expect(indexes, `${flag} appears once`).toHaveLength(1);
	return args[indexes[0]! + 1];
};

describe('qemuArgs', () => {
	const cases: Array<{name: string; spec: QemuSpec; expected: Record<string, string>}> = [
		{
			name: 'tcg, 256 MiB, 1 CPU',
			spec: spec(),
			expected: {
				'-name': 'qemu-vm-abcdefgh,process=vm-abcdefgh',
				'-accel': 'tcg,tb-size=32',
				'-m': '256',
				'-smp': '1',
				'-machine': 'q35',
				'-drive': 'file=/var/lib/kloud/vm-abcdefgh/disk.qcow2,format=qcow2,if=virtio,cache=writeback',
				'-qmp': 'unix:/var/lib/kloud/vm-abcdefgh/qmp.sock,server=on,wait=off',
				'-pidfile': '/var/lib/kloud/vm-abcdefgh/qemu.pid',
				'-chardev': 'socket,id=console,path=/var/lib/kloud/vm-abcdefgh/console.sock,server=on,wait=off',
				'-serial': 'chardev:console',
				'-display': 'none',
				'-vga': 'none',
			},
		},
		{
			name: 'kvm, 16 MiB (the minimum), 4 CPUs, other state root',
			spec: spec({id: 'vm-zyxwvuts', paths: vmPaths('/k', 'vm-zyxwvuts'), memoryMb: 16, cpus: 4, accel: 'kvm'}),
			expected: {
				'-name': 'qemu-vm-zyxwvuts,process=vm-zyxwvuts',
				'-accel': 'kvm',
				'-m': '16',
				'-smp': '4',
				'-drive': 'file=/k/vm-zyxwvuts/disk.qcow2,format=qcow2,if=virtio,cache=writeback',
				'-qmp': 'unix:/k/vm-zyxwvuts/qmp.sock,server=on,wait=off',
				'-pidfile': '/k/vm-zyxwvuts/qemu.pid',
				'-chardev': 'socket,id=console,path=/k/vm-zyxwvuts/console.sock,server=on,wait=off',
			},
		},
		{
			name: 'tcg, 4 GiB, 2 CPUs',
			spec: spec({memoryMb: 4096, cpus: 2}),
			expected: {'-accel': 'tcg,tb-size=32', '-m': '4096', '-smp': '2'},
		},
		{
			name: 'a virtio NIC on the VM\'s TAP',
			spec: spec({nic: {kind: 'tap', ifname: 'vm-abcdefgh', mac: '02:11:22:33:44:55'}}),
			expected: {'-netdev': 'tap,id=net0,ifname=vm-abcdefgh,script=no,downscript=no', '-device': 'virtio-net-pci,netdev=net0,mac=02:11:22:33:44:55'},
		},
		{
			name: 'a virtio NIC on QEMU\'s user-mode network',
			spec: spec({nic: {kind: 'user', mac: '52:54:00:12:34:56'}}),
			expected: {'-netdev': 'user,id=net0,restrict=on', '-device': 'virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56'},
		},
	];

	for (const {name, spec: input, expected} of cases) {
		it(`builds the argv for ${name}`, () => {
			const args = qemuArgs(input);
			for (const [flag, value] of Object.entries(expected)) {
				if (flag === '-device') {
					// -device repeats: the NIC beside the RNG.
					expect(args.filter((_, index) => args[index - 1] === '-device'), flag).toContain(value);
				} else {
					expect(valueOf(args, flag), flag).toBe(value);
				}
			}

			// Entropy for the guest's kernel from the start (its SSH server's host key waits for it).
			expect(args.filter((_, index) => args[index - 1] === '-device')).toContain('virtio-rng-pci');

			expect(args).toContain('-nodefaults');
			expect(args).toContain('-no-user-config');
			expect(args).not.toContain(QEMU_BINARY);
		});

		it(`keeps every argument separate for ${name}`, () => {
			const args = qemuArgs(input);
			for (const arg of args) {
				expect(typeof arg).toBe('string');
				// Flags and values are separate elements: nothing is a shell string to be split.
				expect(arg).not.toMatch(/\s/);
				expect(arg).not.toBe('');
			}
		});
	}

	it('attaches the NoCloud seed as a read-only CD-ROM on q35\'s AHCI controller, after the disk', () => {
		const args = qemuArgs(spec({hasSeed: true, nic: {kind: 'user', mac: '52:54:00:12:34:56'}}));
		const drives = args.flatMap((arg, index) => (arg === '-drive' ? [args[index + 1]] : []));
		expect(drives).toEqual([
			'file=/var/lib/kloud/vm-abcdefgh/disk.qcow2,format=qcow2,if=virtio,cache=writeback',
			'file=/var/lib/kloud/vm-abcdefgh/seed.iso,format=raw,if=ide,media=cdrom,readonly=on',
		]);
		expect(valueOf(args, '-machine')).toBe('q35');
		expect(qemuArgs(spec()).filter(arg => arg === '-drive')).toHaveLength(1);
	});

	it('has no NIC at all without one (network none)', () => {
		const args = qemuArgs(spec());
		expect(args).not.toContain('-netdev');
		expect(args.filter((_, index) => args[index - 1] === '-device').filter(device => device.includes('net'))).toEqual([]);
		expect(args).not.toContain('-nic');
	});

	it('gives the process name as the bare id, within the kernel limit of 15 characters', () => {
		const name = valueOf(qemuArgs(spec()), '-name');
		const processName = /process=([^,]+)/.exec(name ?? '')?.[1];
		expect(processName).toBe('vm-abcdefgh');
		expect(processName!.length).toBeLessThanOrEqual(15);
	});

	const invalid: Array<{name: string; spec: QemuSpec; message: RegExp}> = [
		{name: 'an id without the vm- prefix', spec: spec({id: 'abcdefgh'}), message: /invalid VM id/},
		{name: 'a short id', spec: spec({id: 'vm-abc'}), message: /invalid VM id/},
		{name: 'an id with capitals', spec: spec({id: 'vm-ABCDEFGH'}), message: /invalid VM id/},
		{name: 'an id with a path in it', spec: spec({id: 'vm-../etc'}), message: /invalid VM id/},
		{name: 'memory below 16 MiB', spec: spec({memoryMb: 15}), message: /invalid memory/},
		{name: 'fractional memory', spec: spec({memoryMb: 64.5}), message: /invalid memory/},
		{name: 'zero CPUs', spec: spec({cpus: 0}), message: /invalid CPU count/},
		{name: 'negative CPUs', spec: spec({cpus: -1}), message: /invalid CPU count/},
		{name: 'an unknown accelerator', spec: spec({accel: 'hvf' as 'tcg'}), message: /invalid accelerator/},
		{
			name: 'a path with a comma',
			spec: spec({paths: vmPaths('/srv/a,b', 'vm-abcdefgh')}),
			message: /contains a comma/,
		},
		{
			name: 'a multicast MAC',
			spec: spec({nic: {kind: 'tap', ifname: 'vm-abcdefgh', mac: '03:11:22:33:44:55'}}),
			message: /invalid MAC/,
		},
		{
			name: 'a malformed MAC',
			spec: spec({nic: {kind: 'user', mac: '02:11:22:33:44'}}),
			message: /invalid MAC/,
		},
		{
			name: 'a TAP name with a comma (it would add QEMU options)',
			spec: spec({nic: {kind: 'tap', ifname: 'tap0,script=/x', mac: '02:11:22:33:44:55'}}),
			message: /invalid TAP name/,
		},
		{
			name: 'a relative path',
			spec: spec({paths: {...vmPaths('/k', 'vm-abcdefgh'), disk: 'disk.qcow2'}}),
			message: /not absolute/,
		},
		{
			name: 'a QMP socket path over 107 bytes',
			spec: spec({paths: vmPaths(`/tmp/${'x'.repeat(90)}`, 'vm-abcdefgh')}),
			message: /unix socket limit/,
		},
		{
			name: 'a console socket path over 107 bytes (its QMP socket path fits)',
			spec: spec({paths: vmPaths(`/tmp/${'x'.repeat(80)}`, 'vm-abcdefgh')}),
			message: /console socket path .* unix socket limit/,
		},
	];

	for (const {name, spec: input, message} of invalid) {
		it(`refuses ${name}`, () => {
			expect(() => qemuArgs(input)).toThrow(QemuSpecError);
			expect(() => qemuArgs(input)).toThrow(message);
		});
	}
});

describe('vmPaths', () => {
	it('puts every file in one directory per VM, with absolute paths', () => {
		const paths = vmPaths('/var/lib/kloud/', 'vm-abcdefgh');
		expect(paths).toEqual({
			dir: '/var/lib/kloud/vm-abcdefgh',
			meta: '/var/lib/kloud/vm-abcdefgh/vm.json',
			disk: '/var/lib/kloud/vm-abcdefgh/disk.qcow2',
			qmp: '/var/lib/kloud/vm-abcdefgh/qmp.sock',
			pid: '/var/lib/kloud/vm-abcdefgh/qemu.pid',
			console: '/var/lib/kloud/vm-abcdefgh/console.log',
			consoleSocket: '/var/lib/kloud/vm-abcdefgh/console.sock',
			qemuLog: '/var/lib/kloud/vm-abcdefgh/qemu.log',
			exit: '/var/lib/kloud/vm-abcdefgh/exit.json',
			seed: '/var/lib/kloud/vm-abcdefgh/seed.iso',
		});
	});

	it('resolves a relative state root', () => {
		expect(vmPaths('state', 'vm-abcdefgh').dir).toBe(`${process.cwd()}/state/vm-abcdefgh`);
	});

	it('refuses an id that could escape the state root', () => {
		expect(() => vmPaths('/k', '../vm-abcdefgh')).toThrow(/invalid VM id/);
	});
});

describe('qemuArgs least privilege', () => {
	it.each([
		['without -runas: seccomp forbids set*uid too', {}, 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny', undefined],
		['with -runas: QEMU may drop to the user itself', {runAs: 'kloud-vm'}, 'on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny', 'kloud-vm'],
	] as const)('sandboxes QEMU %s', (_name, overrides, sandbox, runAs) => {
		const args = qemuArgs(spec(overrides));
		expect(valueOf(args, '-sandbox')).toBe(sandbox);
		if (runAs === undefined) {
			expect(args).not.toContain('-runas');
		} else {
			expect(valueOf(args, '-runas')).toBe(runAs);
		}
	});

	it.each(['root,x', '../etc', 'Nobody', '', 'a'.repeat(33), 'x;reboot'])('refuses -runas %j', runAs => {
		expect(() => qemuArgs(spec({runAs}))).toThrow(QemuSpecError);
	});
});
