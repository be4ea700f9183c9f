import {describe, expect, it} from 'vitest';
import {fitColumns, tableRows, windowStart} from '../source/state/table.js';
import {initialView, viewReducer} from '../source/state/view.js';
import {makeVm} from './helpers/tui.js';

describe('table model', () => {
	it.each([
		[120, ['host', 'vm', 'image', 'state', 'ip', 'cpu', 'mem', 'uptime']],
		[80, ['host', 'vm', 'image', 'state', 'ip', 'cpu', 'mem', 'uptime']],
		[70, ['host', 'vm', 'image', 'state', 'ip', 'mem']],
		[40, ['host', 'vm', 'state', 'mem']],
		[10, ['vm']],
	])('at %i columns shows %j', (width, ids) => {
		expect(fitColumns(width).map(column => column.id)).toEqual(ids);
	});

	it('gives the STATE column the space left over, up to 30 characters, to say why', () => {
		const stateWidth = (width: number) => fitColumns(width).find(column => column.id === 'state')?.width;
		expect(stateWidth(80)).toBe(10);
		expect(stateWidth(90)).toBe(20);
		expect(stateWidth(200)).toBe(30);
	});

	it('filters by substring over every column, case-insensitively', () => {
		const vms = [makeVm('vm-aaaaaaaa', 'host-a', {image: 'Debian'}), makeVm('vm-bbbbbbbb', 'host-b', {state: 'crashed'}), makeVm('vm-cccccccc', 'host-c', {ip: '10.1.2.3'})];
		expect(tableRows(vms, 'debi', {column: 'host', isDescending: false}).map(vm => vm.id)).toEqual(['vm-aaaaaaaa']);
		expect(tableRows(vms, 'CRASH', {column: 'host', isDescending: false}).map(vm => vm.id)).toEqual(['vm-bbbbbbbb']);
		expect(tableRows(vms, '10.1.2', {column: 'host', isDescending: false}).map(vm => vm.id)).toEqual(['vm-cccccccc']);
	});

	it('sorts stably: equal keys keep host, age and id order in both directions', () => {
		const vms = [makeVm('vm-bbbbbbbb', 'h2', {createdAt: 1}), makeVm('vm-aaaaaaaa', 'h1', {createdAt: 2}), makeVm('vm-cccccccc', 'h1', {createdAt: 1})];
		expect(tableRows(vms, '', {column: 'image', isDescending: false}).map(vm => vm.id)).toEqual(['vm-cccccccc', 'vm-aaaaaaaa', 'vm-bbbbbbbb']);
		expect(tableRows(vms, '', {column: 'image', isDescending: true}).map(vm => vm.id)).toEqual(['vm-cccccccc', 'vm-aaaaaaaa', 'vm-bbbbbbbb']);
		expect(tableRows(vms, '', {column: 'vm', isDescending: true}).map(vm => vm.id)).toEqual(['vm-cccccccc', 'vm-bbbbbbbb', 'vm-aaaaaaaa']);
	});

	it.each([
		[0, 10, 0, 100, 0],
		[15, 10, 0, 100, 6],
		[3, 10, 6, 100, 3],
		[8, 10, 6, 100, 6],
		[99, 10, 0, 100, 90],
		[5, 10, 0, 8, 0],
	])('selection %i in a window of %i (was at %i, %i rows) starts at %i', (selected, height, previous, count, start) => {
		expect(windowStart(selected, height, previous, count)).toBe(start);
	});

	it('keeps the selection on the same VM when rows change, and near its place when it goes', () => {
		let view = viewReducer(initialView(), {type: 'move', delta: 2, rowIds: ['a', 'b', 'c', 'd']});
		expect(view.selectedId).toBe('c');
		view = viewReducer(view, {type: 'sync-rows', rowIds: ['x', 'a', 'b', 'c', 'd']});
		expect(view.selectedId).toBe('c');
		expect(view.cursor).toBe(3);
		view = viewReducer(view, {type: 'sync-rows', rowIds: ['x', 'a', 'b', 'd']});
		expect(view.selectedId).toBe('d');
		const same = viewReducer(view, {type: 'sync-rows', rowIds: ['x', 'a', 'b', 'd']});
		expect(same).toBe(view);
	});
});
