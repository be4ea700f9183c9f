import {describe, expect, it} from 'vitest';
import {cellText, fitColumns, tableRows, windowStart} from '../source/state/table.js';
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
		expect(stateWidth(80)).toBe(9);
		expect(stateWidth(90)).toBe(19);
		expect(stateWidth(200)).toBe(30);
	});

	it('CPU% and MEM show the measured load when the agent sends it, else the configured size', () => {
		const idle = makeVm('vm-aaaaaaaa', 'host-a', {cpus: 2, memoryMb: 2048});
		const busy = makeVm('vm-bbbbbbbb', 'host-a', {cpus: 2, memoryMb: 2048, load: {cpuPercent: 73.4, rssBytes: 215 * 1024 * 1024, sampledAt: 1}});
		const big = makeVm('vm-cccccccc', 'host-a', {load: {cpuPercent: 0.2, rssBytes: 1536 * 1024 * 1024, sampledAt: 1}});
		expect([cellText(idle, 'cpu'), cellText(idle, 'mem')]).toEqual(['2cpu', '2G']);
		expect([cellText(busy, 'cpu'), cellText(busy, 'mem')]).toEqual(['73%', '215M']);
		expect([cellText(big, 'cpu'), cellText(big, 'mem')]).toEqual(['0%', '1.5G']);
		expect(tableRows([busy, idle, big], '', {column: 'cpu', isDescending: true}).map(vm => vm.id)).toEqual(['vm-bbbbbbbb', 'vm-cccccccc', 'vm-aaaaaaaa']);
		expect(tableRows([busy, idle, big], '', {column: 'mem', isDescending: true}).map(vm => vm.id)).toEqual(['vm-cccccccc', 'vm-bbbbbbbb', 'vm-aaaaaaaa']);
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
