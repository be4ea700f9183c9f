/** The `/` filter's language (source/state/filter.ts) and the VM table's fields. */
import {describe, expect, it} from 'vitest';
import {filterHint, parseFilter} from '../source/state/filter.js';
import {tableRows, VM_FILTER_FIELDS} from '../source/state/table.js';
import {makeVm, NOW} from './helpers/tui.js';

const vms = [
	makeVm('vm-aaaaaaaa', 'host-a', {state: 'crashed', pid: null, exit: 'exit code 1'}),
	makeVm('vm-bbbbbbbb', 'host-a', {image: 'alpine', clientToken: 'grp:web:abcd1234:3:0:0'}),
	makeVm('vm-cccccccc', 'host-b', {state: 'crashed', pid: null, exit: 'killed by SIGKILL', owner: 'alice'}),
	makeVm('vm-dddddddd', 'host-ab', {ip: '10.77.0.5', mac: '52:54:00:12:34:56', network: 'private', createdAt: NOW}),
];

const ids = (filter: string) => tableRows(vms, filter, {column: 'vm', isDescending: false}).map(vm => vm.id);

describe('the VM filter', () => {
	it.each([
		['', ['vm-aaaaaaaa', 'vm-bbbbbbbb', 'vm-cccccccc', 'vm-dddddddd']],
		['state:crashed', ['vm-aaaaaaaa', 'vm-cccccccc']],
		['state:crashed host:host-a', ['vm-aaaaaaaa']],
		// A field compares the whole value: host-a is not host-ab …
		['host:host-a', ['vm-aaaaaaaa', 'vm-bbbbbbbb']],
		// … unless a * says so.
		['host:host-a*', ['vm-aaaaaaaa', 'vm-bbbbbbbb', 'vm-dddddddd']],
		['STATE:Crashed', ['vm-aaaaaaaa', 'vm-cccccccc']],
		['image:alpine', ['vm-bbbbbbbb']],
		['image:demo state:running', ['vm-dddddddd']],
		['group:web', ['vm-bbbbbbbb']],
		['owner:alice', ['vm-cccccccc']],
		['network:private', ['vm-dddddddd']],
		['ip:10.77.0.5', ['vm-dddddddd']],
		// Free text (a substring of any column) and fields together: all must match.
		['SIGKILL', ['vm-cccccccc']],
		['crashed host:host-b', ['vm-cccccccc']],
		['host-a crashed', ['vm-aaaaaaaa']],
		['state:stopped', []],
		// A MAC's colons are no field.
		['vm-ddd', ['vm-dddddddd']],
	])('%j → %j', (filter, expected) => {
		expect(ids(filter)).toEqual(expected);
	});

	it('matches an unknown field as text and says so, naming the fields there are', () => {
		const parsed = parseFilter('stat:crashed host:host-a', VM_FILTER_FIELDS);
		expect(parsed.unknownFields).toEqual(['stat']);
		expect(filterHint(parsed, VM_FILTER_FIELDS)).toBe('unknown field stat (matched as text); fields here: state, host, image, group, vm, ip, owner, network');
		expect(ids('stat:crashed')).toEqual([]);
		expect(filterHint(parseFilter('state:crashed alp', VM_FILTER_FIELDS), VM_FILTER_FIELDS)).toBeUndefined();
	});
});
