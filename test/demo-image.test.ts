/** The demo image builder's pure parts: module order, the guest's scripts, syslinux.cfg, apt output, cpio, modinfo. */
import {execFileSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {describe, expect, it, vi} from 'vitest';
import {findMissingPackages} from '../agent/image/build-runner.js';
import {runImageCommand} from '../agent/image/cli-image.js';
import {createCpioArchive, CpioEntryError, type CpioEntry} from '../agent/image/cpio.js';
import {ElfFormatError, neededClosure, readElfDynamic, type ElfDynamicInfo} from '../agent/image/elf-dynamic.js';
import {seedFiles} from '../agent/seed.js';
import {
	AUTHORIZED_KEYS_AWK,
	DEMO_KERNEL_CMDLINE,
	findReadyMarker,
	formatModulesDep,
	kernelPackageFromDepends,
	ModuleResolutionError,
	moduleName,
	parseModuleIndex,
	parsePrintUris,
	POWER_BUTTON_SCRIPT,
	renderInitScript,
	renderSyslinuxConfig,
	resolveModules,
	UDHCPC_SCRIPT,
} from '../agent/image/demo-image.js';
import {ModuleFormatError, moduleDependencies, readModinfo} from '../agent/image/modinfo.js';

/** A slice of a real modules.dep (Debian 6.1), in depmod's format. */
const DEBIAN_DEP = `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/fs/nls/nls_iso8859-1.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/fat/fat.ko:
`;

describe('resolveModules', () => {
	const cases: Array<{name: string; depText: string; wanted: string[]; expected: string[]}> = [
		{name: 'nothing wanted', depText: DEBIAN_DEP, wanted: [], expected: []},
		{
			name: 'a module after its dependencies, modprobe order (last listed first)',
			depText: DEBIAN_DEP,
			wanted: ['virtio_net'],
			expected: ['kernel/net/core/failover.ko', 'kernel/drivers/net/net_failover.ko', 'kernel/drivers/net/virtio_net.ko'],
		},
		{
			name: 'shared dependencies once, as early as needed; wanted order kept',
			depText: DEBIAN_DEP,
			wanted: ['ata_piix', 'sr_mod'],
			expected: [
				'kernel/drivers/scsi/scsi_common.ko',
				'kernel/drivers/scsi/scsi_mod.ko',
				'kernel/drivers/ata/libata.ko',
				'kernel/drivers/ata/ata_piix.ko',
				'kernel/drivers/cdrom/cdrom.ko',
				'kernel/drivers/scsi/sr_mod.ko',
			],
		},
		{
			name: 'a module wanted twice or already pulled in as a dependency appears once',
			depText: DEBIAN_DEP,
			wanted: ['vfat', 'fat', 'vfat'],
			expected: ['kernel/fs/fat/fat.ko', 'kernel/fs/fat/vfat.ko'],
		},
		{
			name: 'names with - or _, file names and paths all match',
			depText: DEBIAN_DEP,
			wanted: ['nls_iso8859_1', 'kernel/fs/fat/fat.ko', 'virtio-pci'],
			expected: [
				'kernel/fs/nls/nls_iso8859-1.ko',
				'kernel/fs/fat/fat.ko',
				'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
				'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
				'kernel/drivers/virtio/virtio_pci.ko',
			],
		},
		{
			name: 'a dependency without a line of its own is a leaf; blank and comment lines are skipped',
			depText: '# generated\n\na.ko: b.ko\n\n',
			wanted: ['a'],
			expected: ['b.ko', 'a.ko'],
		},
		{
			name: 'compressed module paths',
			depText: 'kernel/a.ko.xz: kernel/b.ko.xz\nkernel/b.ko.xz:\n',
			wanted: ['a'],
			expected: ['kernel/b.ko.xz', 'kernel/a.ko.xz'],
		},
		{
			name: 'dependencies of dependencies are followed even when a line lists only direct ones',
			depText: 'a.ko: b.ko\nb.ko: c.ko\nc.ko: d.ko\nd.ko:\n',
			wanted: ['a'],
			expected: ['d.ko', 'c.ko', 'b.ko', 'a.ko'],
		},
	];

	for (const {name, depText, wanted, expected} of cases) {
		it(name, () => {
			expect(resolveModules(depText, wanted)).toEqual(expected);
		});
	}

	it('names every unknown module', () => {
		expect(() => resolveModules(DEBIAN_DEP, ['vfat', 'nosuch', 'other'])).toThrow(ModuleResolutionError);
		expect(() => resolveModules(DEBIAN_DEP, ['vfat', 'nosuch', 'other'])).toThrow('unknown kernel modules: nosuch, other');
	});

	it('refuses a dependency cycle and names it', () => {
		expect(() => resolveModules('a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n', ['a'])).toThrow('kernel module dependency cycle: a → b → c → a');
	});

	it('refuses a line it cannot read', () => {
		expect(() => resolveModules('kernel/a.ko kernel/b.ko\n', ['a'])).toThrow(ModuleResolutionError);
	});

	it('reads what formatModulesDep writes', () => {
		const graph = new Map([
			['x/a.ko', ['x/b.ko']],
			['x/b.ko', []],
		]);
		expect(formatModulesDep(graph)).toBe('x/a.ko: x/b.ko\nx/b.ko:\n');
		expect(resolveModules(formatModulesDep(graph), ['a'])).toEqual(['x/b.ko', 'x/a.ko']);
	});
});

describe('module names', () => {
	it.each([
		['kernel/fs/nls/nls_iso8859-1.ko', 'nls_iso8859_1'],
		['kernel/drivers/char/hw_random/virtio-rng.ko.xz', 'virtio_rng'],
		['vfat.ko.zst', 'vfat'],
		['button', 'button'],
	])('%s → %s', (path, name) => {
		expect(moduleName(path)).toBe(name);
	});

	it('indexes modules.order and modules.builtin by name', () => {
		const index = parseModuleIndex('kernel/net/packet/af_packet.ko\n\nkernel/fs/nls/nls_iso8859-1.ko\n');
		expect([...index]).toEqual([
			['af_packet', 'kernel/net/packet/af_packet.ko'],
			['nls_iso8859_1', 'kernel/fs/nls/nls_iso8859-1.ko'],
		]);
	});
});

describe('the guest /init', () => {
	const init = renderInitScript({modules: ['virtio.ko', 'virtio_pci.ko', 'evdev.ko', 'button.ko']});

	it('is a shell script that parses', () => {
		expect(init.startsWith('#!/bin/sh\n')).toBe(true);
		for (const script of [init, UDHCPC_SCRIPT, POWER_BUTTON_SCRIPT]) {
			expect(() => execFileSync('sh', ['-n'], {input: script, stdio: ['pipe', 'pipe', 'pipe']})).not.toThrow();
		}
	});

	it('mounts the kernel filesystems and loads the modules in the order given', () => {
		expect(init).toContain('mount -t devtmpfs devtmpfs /dev');
		expect(init).toMatch(/for module in virtio\.ko \\\n\tvirtio_pci\.ko \\\n\tevdev\.ko \\\n\tbutton\.ko; do\n\tinsmod "\/lib\/modules\/\$module"/);
	});

	it('starts acpid after the modules, gets an address with udhcpc, serves HTTP and prints the marker', () => {
		const position = (text: string): number => {
			const index = init.indexOf(text);
			expect(index, text).toBeGreaterThanOrEqual(0);
			return index;
		};

		const steps = ['insmod ', 'acpid -c /etc/acpi', 'findfs "LABEL=$label"', 'udhcpc -i eth0 -s /etc/udhcpc.script -t 3 -T 1', 'httpd -p 80 -h /www', 'dropbear -r "$hostkey" -s', 'echo "KLOUD-READY hostname=$(hostname) ip=$ip"', '/run/user-data'];
		const positions = steps.map(step => position(step));
		expect(positions).toEqual([...positions].sort((a, b) => a - b));
		expect(init).toContain('ip=none');
		expect(init).toContain("-b -p /run/udhcpc.pid");
	});

	it('takes the hostname from a cidata seed and runs user-data only when it starts with #!', () => {
		expect(init).toContain('for label in cidata CIDATA');
		expect(init).toContain("sed -n 's/^local-hostname:[[:space:]]*//p'");
		expect(init).toContain(`[ "$(head -c 2 "$seed/user-data")" = '#!' ]`);
		expect(init).toContain('KLOUD-USERDATA-DONE status=$?');
	});

	it('never lets PID 1 exit: it ends in a loop that keeps a root shell on the serial console', () => {
		expect(init.trimEnd().endsWith('while :; do\n\tsetsid -c sh -i < /dev/ttyS0 > /dev/ttyS0 2>&1\n\tsleep 1\ndone')).toBe(true);
		expect(init).not.toMatch(/^\s*exit\b/m);
	});

	it('refuses module names that are not plain .ko file names', () => {
		expect(() => renderInitScript({modules: ['a.ko; reboot']})).toThrow(ModuleResolutionError);
		expect(() => renderInitScript({modules: ['../a.ko']})).toThrow(ModuleResolutionError);
	});

	it('powers off cleanly on the power button and records the lease', () => {
		expect(POWER_BUTTON_SCRIPT).toContain('KLOUD-POWEROFF');
		expect(POWER_BUTTON_SCRIPT.trimEnd().endsWith('sync\npoweroff -f')).toBe(true);
		expect(UDHCPC_SCRIPT).toContain('echo "$ip" > /run/kloud-ip');
		expect(UDHCPC_SCRIPT).toContain('route add default gw "$gateway"');
		expect(UDHCPC_SCRIPT).toContain('nameserver $server');
	});
});

describe('syslinux.cfg', () => {
	it('boots the kernel with the initramfs at once, console on the serial port', () => {
		expect(renderSyslinuxConfig()).toBe(
			'DEFAULT kloud\nPROMPT 0\nTIMEOUT 0\nLABEL kloud\n\tLINUX /vmlinuz\n\tINITRD /initrd.gz\n\tAPPEND console=ttyS0,115200 quiet\n',
		);
		expect(DEMO_KERNEL_CMDLINE).toContain('console=ttyS0,115200');
	});

	it('takes another command line, on one line only', () => {
		expect(renderSyslinuxConfig({append: 'console=ttyS0 debug'})).toContain('\tAPPEND console=ttyS0 debug\n');
		expect(() => renderSyslinuxConfig({append: 'quiet\nLABEL evil'})).toThrow(RangeError);
	});
});

describe('apt output', () => {
	it('parses apt-get download --print-uris', () => {
		const text = [
			"'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4%2bdeb12u1%2bb1_amd64.deb' busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb 928188 SHA256:3D3FDBE91D4660C873E14B092C213FE81C1DA6362DAA236EB25D0171EB108744",
			"'http://example/l/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb' linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb 70550672 MD5Sum:0123",
			'E: something else',
		].join('\n');
		expect(parsePrintUris(text)).toEqual([
			{
				package: 'busybox-static',
				url: 'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4%2bdeb12u1%2bb1_amd64.deb',
				fileName: 'busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb',
				size: 928188,
				sha256: '3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744',
			},
			{
				package: 'linux-image-6.1.0-56-amd64',
				url: 'http://example/l/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb',
				fileName: 'linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb',
				size: 70550672,
				sha256: '',
			},
		]);
	});

	it.each([
		[' linux-image-6.1.0-56-amd64 (= 6.1.192-2)', 'linux-image-6.1.0-56-amd64'],
		['linux-image-6.12.9-amd64-unsigned (= 6.12.9-1) | linux-image-6.12.9-amd64', 'linux-image-6.12.9-amd64-unsigned'],
		['initramfs-tools, linux-image-6.1.0-56-amd64', 'linux-image-6.1.0-56-amd64'],
		['linux-image-amd64-signed-template', undefined],
		['', undefined],
	])('kernel package of Depends "%s" is %s', (depends, expected) => {
		expect(kernelPackageFromDepends(depends)).toBe(expected);
	});
});

describe('findReadyMarker', () => {
	it.each([
		['KLOUD-READY hostname=vm-abc ip=10.0.2.15\r\n', {hostname: 'vm-abc', ip: '10.0.2.15'}],
		['boot noise\r\n~ # KLOUD-READY hostname=kloud ip=none\r\n', {hostname: 'kloud', ip: undefined}],
		['KLOUD-READY hostname=kloud', undefined],
		// Read while the guest was still writing the line.
		['KLOUD-READY hostname=vm-abc ip=10.', undefined],
		['KLOUD-READY hostname=vm-abc ip=10.0.2.15', undefined],
		['', undefined],
	])('%j', (text, expected) => {
		expect(findReadyMarker(text)).toEqual(expected);
	});
});

describe('findMissingPackages', () => {
	it('names the packages of the programs that are not on PATH, once each, sorted', async () => {
		expect(await findMissingPackages({sh: 'dash', 'kloud-no-such-tool-b': 'pkg-b', 'kloud-no-such-tool-a': 'pkg-a', 'kloud-no-such-tool-c': 'pkg-a'})).toEqual(['pkg-a', 'pkg-b']);
		expect(await findMissingPackages({sh: 'dash'})).toEqual([]);
	});
});

/** Reads a newc archive back: the test's own reader, independent of the writer. */
function readCpio(archive: Buffer): Array<{path: string; mode: number; size: number; rdev: [number, number]; data: Buffer; offset: number}> {
	const entries = [];
	let offset = 0;
	for (;;) {
		expect(archive.toString('ascii', offset, offset + 6)).toBe('070701');
		const field = (index: number): number => Number.parseInt(archive.toString('ascii', offset + 6 + index * 8, offset + 14 + index * 8), 16);
		const [mode, size, rdevMajor, rdevMinor, nameSize] = [field(1), field(6), field(9), field(10), field(11)];
		const path = archive.toString('utf8', offset + 110, offset + 110 + nameSize - 1);
		const dataStart = Math.ceil((offset + 110 + nameSize) / 4) * 4;
		if (path === 'TRAILER!!!') {
			expect(archive.length).toBe(dataStart);
			return entries;
		}

		entries.push({path, mode, size, rdev: [rdevMajor, rdevMinor] as [number, number], data: archive.subarray(dataStart, dataStart + size), offset});
		offset = Math.ceil((dataStart + size) / 4) * 4;
	}
}

describe('createCpioArchive', () => {
	it('writes newc entries, 4-byte aligned, parents first, ending with the trailer', () => {
		const entries: CpioEntry[] = [
			{type: 'directory', path: 'tmp', mode: 0o1777},
			{type: 'file', path: 'usr/sbin/x', data: Buffer.from('abcde'), mode: 0o755},
			{type: 'symlink', path: 'bin/sh', target: '/bin/busybox'},
			{type: 'char-device', path: 'dev/console', major: 5, minor: 1},
			{type: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n')},
		];
		const archive = createCpioArchive(entries);
		const read = readCpio(archive);
		expect(read.map(entry => [entry.path, entry.mode.toString(8)])).toEqual([
			['tmp', '41777'],
			['usr', '40755'],
			['usr/sbin', '40755'],
			['usr/sbin/x', '100755'],
			['bin', '40755'],
			['bin/sh', '120777'],
			['dev', '40755'],
			['dev/console', '20600'],
			['init', '100644'],
		]);
		expect(read.find(entry => entry.path === 'usr/sbin/x')?.data.toString()).toBe('abcde');
		expect(read.find(entry => entry.path === 'bin/sh')?.data.toString()).toBe('/bin/busybox');
		expect(read.find(entry => entry.path === 'dev/console')?.rdev).toEqual([5, 1]);
		expect(read.every(entry => entry.offset % 4 === 0)).toBe(true);
		expect(createCpioArchive(entries).equals(archive)).toBe(true);
	});

	it.each(['', '/init', 'a//b', 'a/../b', './a'])('refuses the path %j', path => {
		expect(() => createCpioArchive([{type: 'directory', path}])).toThrow(CpioEntryError);
	});

	it('refuses a path given twice, also when it was added as a parent', () => {
		expect(() => createCpioArchive([{type: 'directory', path: 'a'}, {type: 'directory', path: 'a'}])).toThrow('a is listed twice');
		expect(() => createCpioArchive([{type: 'file', path: 'a/b', data: Buffer.alloc(0)}, {type: 'directory', path: 'a'}])).toThrow(CpioEntryError);
	});
});

/** A minimal ELF64 little-endian file with the given sections (index 0 is the null section). */
function elfWith(sections: Array<{name: string; data: Buffer}>): Buffer {
	const names = Buffer.from(`\0${[...sections.map(section => section.name), '.shstrtab'].join('\0')}\0`);
	const all = [...sections, {name: '.shstrtab', data: names}];
	const header = Buffer.alloc(64);
	header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
	let offset = 64;
	const placed = all.map(section => {
		const at = offset;
		offset += section.data.length;
		return {...section, at};
	});
	const table = Buffer.alloc(64 * (all.length + 1));
	let nameOffset = 1;
	placed.forEach((section, index) => {
		const base = 64 * (index + 1);
		table.writeUInt32LE(nameOffset, base);
		nameOffset += section.name.length + 1;
		table.writeBigUInt64LE(BigInt(section.at), base + 24);
		table.writeBigUInt64LE(BigInt(section.data.length), base + 32);
	});
	header.writeBigUInt64LE(BigInt(offset), 0x28);
	header.writeUInt16LE(64, 0x3a);
	header.writeUInt16LE(all.length + 1, 0x3c);
	header.writeUInt16LE(all.length, 0x3e);
	return Buffer.concat([header, ...all.map(section => section.data), table]);
}

describe('readModinfo', () => {
	const modinfo = Buffer.from('license=GPL\0alias=virtio:d00000001v*\0depends=net_failover,virtio_ring\0\0\0name=virtio_net\0');

	it('reads the key=value pairs of .modinfo and the dependencies', () => {
		const elf = elfWith([
			{name: '.text', data: Buffer.from('depends=decoy\0')},
			{name: '.modinfo', data: modinfo},
		]);
		expect(readModinfo(elf)).toEqual([
			['license', 'GPL'],
			['alias', 'virtio:d00000001v*'],
			['depends', 'net_failover,virtio_ring'],
			['name', 'virtio_net'],
		]);
		expect(moduleDependencies(elf)).toEqual(['net_failover', 'virtio_ring']);
	});

	it('gives no dependencies for an empty depends=', () => {
		expect(moduleDependencies(elfWith([{name: '.modinfo', data: Buffer.from('depends=\0name=evdev\0')}]))).toEqual([]);
	});

	it.each([
		['not an ELF file', Buffer.from('hello, this is not an ELF file at all, but it is long enough to look at..')],
		['no .modinfo section', elfWith([{name: '.text', data: Buffer.from('x')}])],
	])('refuses %s', (_label, bytes) => {
		expect(() => readModinfo(bytes, 'x.ko')).toThrow(ModuleFormatError);
	});
});

describe('kloud-agent image', () => {
	const capture = async (argv: string[]): Promise<{code: number; stdout: string; stderr: string}> => {
		let stdout = '';
		let stderr = '';
		const out = vi.spyOn(process.stdout, 'write').mockImplementation(chunk => {
			stdout += String(chunk);
			return true;
		});
		const error = vi.spyOn(process.stderr, 'write').mockImplementation(chunk => {
			stderr += String(chunk);
			return true;
		});
		try {
			return {code: await runImageCommand(argv), stdout, stderr};
		} finally {
			out.mockRestore();
			error.mockRestore();
		}
	};

	it('prints the usage on --help', async () => {
		const result = await capture(['--help']);
		expect(result).toMatchObject({code: 0, stderr: ''});
		expect(result.stdout).toContain('kloud-agent image build-demo --out DIR');
	});

	it.each([
		[[], 'missing subcommand'],
		[['build'], 'unknown subcommand "build"'],
		[['build-demo'], '--out DIR is required'],
		[['build-demo', '--out'], "argument missing"],
		[['build-demo', '--out', '/tmp/x', 'extra'], 'unexpected argument "extra"'],
		[['build-demo', '--out', '/tmp/x', '--frob'], "Unknown option '--frob'"],
	])('refuses %j with the usage and exit code 2', async (argv, problem) => {
		const result = await capture(argv);
		expect(result.code).toBe(2);
		expect(result.stdout).toBe('');
		expect(result.stderr).toContain(problem);
		expect(result.stderr).toContain('Usage');
	});
});

describe('the guest\'s SSH keys', () => {
	// The same program the guest's busybox awk runs, here under the host's awk (POSIX awk both).
	const authorizedKeys = (metaData: string): string => execFileSync('awk', [AUTHORIZED_KEYS_AWK], {input: metaData, encoding: 'utf8'});

	it('takes every key of the seed\'s public-keys, unquoted, one a line', () => {
		const keys = ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9vb2 alice@laptop', 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ a "quoted" \\ comment', 'ecdsa-sha2-nistp256 AAAAE2VjZHNh'];
		expect(authorizedKeys(seedFiles({vmId: 'vm-abcdefgh', sshKeys: keys})['meta-data'])).toBe(`${keys.join('\n')}\n`);
	});

	it('gives nothing without keys, and stops at the list\'s end', () => {
		expect(authorizedKeys(seedFiles({vmId: 'vm-abcdefgh'})['meta-data'])).toBe('');
		expect(authorizedKeys('public-keys:\n  - "ssh-ed25519 AAAA one"\nlocal-hostname: x\n  - "not a key"\n')).toBe('ssh-ed25519 AAAA one\n');
	});

	it('starts dropbear keys only, with a host key kept on the boot disk', () => {
		const init = renderInitScript({modules: []});
		expect(init).toContain('dropbear -r "$hostkey" -s -P /run/dropbear.pid');
		expect(init).toContain('findfs LABEL=KLOUD');
		expect(init).toContain('umount /mnt/boot');
	});
});

describe('readElfDynamic', () => {
	it('reads a real program\'s loader and libraries (this Node binary)', () => {
		const info = readElfDynamic(readFileSync(process.execPath), 'node');
		expect(info.interpreter).toMatch(/^\/lib.*\/ld-linux-x86-64\.so\.2$/);
		expect(info.needed).toContain('libc.so.6');
		expect(execFileSync('readelf', ['-d', process.execPath], {encoding: 'utf8'}).match(/\(NEEDED\).*\[(.+)\]/g)?.map(line => /\[(.+)\]/.exec(line)![1])).toEqual(info.needed);
	});

	it('refuses what is not a 64-bit little-endian ELF file, naming it', () => {
		expect(() => readElfDynamic(Buffer.from('#!/bin/sh\n'.padEnd(64, ' ')), 'script')).toThrow(new ElfFormatError('script: not an ELF file'));
		const elf32 = Buffer.alloc(64);
		elf32.set([0x7f, 0x45, 0x4c, 0x46, 1, 1]);
		expect(() => readElfDynamic(elf32, 'old')).toThrow('old: not a 64-bit little-endian ELF file');
		const truncated = readFileSync(process.execPath).subarray(0, 100);
		expect(() => readElfDynamic(truncated, 'cut')).toThrow(ElfFormatError);
	});
});

describe('neededClosure', () => {
	const info = (needed: string[], interpreter?: string): ElfDynamicInfo => ({interpreter, needed});
	const libraries: Record<string, ElfDynamicInfo> = {
		'libtomcrypt.so.1': info(['libgmp.so.10', 'libtommath.so.1', 'libc.so.6']),
		'libtommath.so.1': info(['libc.so.6']),
		'libgmp.so.10': info(['libc.so.6']),
		'libc.so.6': info(['ld-linux-x86-64.so.2'], '/lib64/ld-linux-x86-64.so.2'),
	};
	const lookup = (soname: string) => libraries[soname];
	const dropbear = info(['libtomcrypt.so.1', 'libtommath.so.1', 'libc.so.6'], '/lib64/ld-linux-x86-64.so.2');

	it.each([
		{name: 'a static program needs nothing', programs: [info([])], libraries: [], missing: []},
		{name: 'libraries of libraries, each once, the loader left out', programs: [dropbear], libraries: ['libtomcrypt.so.1', 'libtommath.so.1', 'libc.so.6', 'libgmp.so.10'], missing: []},
		{name: 'what is not to be had is named', programs: [info(['libz.so.1', 'libc.so.6', 'libcrypt.so.1'], '/lib64/ld-linux-x86-64.so.2')], libraries: ['libc.so.6'], missing: ['libcrypt.so.1', 'libz.so.1']},
	])('$name', ({programs, libraries: expected, missing}) => {
		expect(neededClosure(programs, lookup)).toEqual({libraries: expected, missing});
	});
});

describe('the image stamp', () => {
	it('hashes the builder\'s TypeScript from the tests and from the built agent alike, so neither rebuilds the image under the other\'s VMs', async () => {
		const {builderSources} = await import('../agent/image/build-runner.js');
		// @ts-expect-error: dist has no type declarations the test config sees
		const built = (await import('../dist/agent/image/build-runner.js')) as {builderSources: typeof builderSources};
		const [fromTests, fromDist] = await Promise.all([builderSources(), built.builderSources()]);
		expect(fromTests.names).toContain('build-runner.ts');
		expect(fromDist).toEqual(fromTests);
	});
});
