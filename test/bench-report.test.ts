import {describe, expect, it} from 'vitest';
import {domainXml, qemuConfAsRoot} from '../bench/lib/libvirt.js';
import {spliceSection} from '../bench/lib/report.js';
import {peerTable} from '../bench/lib/stats.js';

describe('BENCHMARKS.md sections', () => {
	it.each([
		['replaces the section in place', '# B\n\nA\n<!-- peer:begin -->\nold\n<!-- peer:end -->\n\n## Reading these numbers\nR\n', '# B\n\nA\n<!-- peer:begin -->\nnew\n<!-- peer:end -->\n\n## Reading these numbers\nR\n'],
		['puts a new section before the reading', '# B\n\nA\n\n## Reading these numbers\nR\n', '# B\n\nA\n\n<!-- peer:begin -->\nnew\n<!-- peer:end -->\n\n## Reading these numbers\nR\n'],
		['puts it at the end when there is no reading', '# B\n\nA\n', '# B\n\nA\n\n<!-- peer:begin -->\nnew\n<!-- peer:end -->\n'],
	])('%s', (_, document, expected) => {
		expect(spliceSection(document, 'peer', 'new\n', '## Reading these numbers')).toBe(expected);
	});
});

describe('libvirt set-up', () => {
	it.each([
		['adds user and group', '# comment\n#user = "libvirt-qemu"\n'],
		['replaces earlier settings', 'user = "libvirt-qemu"\ngroup = "kvm"\nsecurity_driver = "none"\n'],
		['is idempotent', qemuConfAsRoot('user = "x"\n')],
	])('qemu.conf %s: QEMU runs as root, once, other lines kept', (_, text) => {
		const result = qemuConfAsRoot(text);
		expect(result.match(/^user = .*$/gm)).toEqual(['user = "root"']);
		expect(result.match(/^group = .*$/gm)).toEqual(['group = "root"']);
		for (const line of text.split('\n').filter(line => line !== '' && !/^(user|group) =/.test(line) && !line.startsWith('# Set by'))) {
			expect(result).toContain(line);
		}
	});

	it('describes FACTS.md’s domain: TCG, q35, ACPI, 32 MiB TB cache, no USB, no balloon, no NIC, the overlay escaped', () => {
		const xml = domainXml({name: 'kb-1', disk: "/tmp/a'b&c.qcow2", memoryMb: 256});
		for (const part of ["<domain type='qemu'>", "machine='q35'", '<acpi/>', "<tb-cache unit='MiB'>32</tb-cache>", "<controller type='usb' model='none'/>", "<memballoon model='none'/>", "<memory unit='MiB'>256</memory>", "<source file='/tmp/a&apos;b&amp;c.qcow2'/>"]) {
			expect(xml).toContain(part);
		}

		expect(xml).not.toContain('<interface');
	});
});

describe('peer tables', () => {
	it('gives the ratio of medians, the verdict against the goal, and rows without figures', () => {
		const table = peerTable(
			[
				{measure: 'start', kloud: [100, 120, 110], peer: [200, 220, 210], goal: 1, goalText: '≤ 1×'},
				{measure: 'list', kloud: [40], peer: [10], goal: 3, goalText: '≤ 3×'},
				{measure: 'restart', kloud: [], peer: [], goalText: '≤ 1×', missing: 'not built yet'},
			],
			{kloud: 'kloud', peer: 'libvirt'},
		).split('\n');
		expect(table[0]).toBe('| measure | kloud median | p90 | libvirt median | p90 | ratio kloud/peer | goal | |');
		expect(table[2]).toMatch(/^\| start \| 110 ms \| .* \| 210 ms \| .* \| 0\.52× \| ≤ 1× \| met \|$/);
		expect(table[3]).toMatch(/\| 4\.00× \| ≤ 3× \| missed \|$/);
		expect(table[4]).toBe('| restart | – | – | – | – | – | ≤ 1× | not built yet |');
	});
});
