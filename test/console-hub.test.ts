/**
 * The agent's hold on serial sockets, against a unix socket server playing QEMU's chardev: output
 * fanned out as frames, the writer's input written back, sessions ended when the socket closes.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {createServer, type Server, type Socket} from 'node:net';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {ConsoleHub} from '../agent/console-hub.js';
import {parseConsoleFrame, type ConsoleFrame} from '../source/protocol/index.js';
import {waitFor} from './helpers/cloud.js';

const SILENT = {info() {}, warn() {}, debug() {}};
const ALICE_QUEUE = 'amq.gen-alice';


let dir: string;
let server: Server;
let qemuSide: Socket | undefined;
let fromAgent = '';
let frames: Array<{queue: string; frame: ConsoleFrame}>;
let hub: ConsoleHub;

beforeEach(async () => {
	dir = await mkdtemp('/tmp/kloud-hub-');
	frames = [];
	fromAgent = '';
	qemuSide = undefined;
	server = createServer(socket => {
		qemuSide = socket;
		socket.on('data', chunk => {
			fromAgent += chunk.toString();
		});
	});
	await new Promise<void>(resolve => server.listen(join(dir, 'console.sock'), resolve));
	await writeFile(join(dir, 'console.log'), 'earlier boot\r\n');
	hub = new ConsoleHub({
		log: SILENT,
		publish(queue, content) {
			const parsed = parseConsoleFrame(content);
			expect(parsed.ok).toBe(true);
			frames.push({queue, frame: (parsed as {value: ConsoleFrame}).value});
			return true;
		},
	});
});

afterEach(async () => {
	hub.close('test over');
	server.close();
	await rm(dir, {recursive: true, force: true});
});

const paths = () => ({consoleSocket: join(dir, 'console.sock'), console: join(dir, 'console.log')});
const output = (queue: string) =>
	frames
		.filter(entry => entry.queue === queue && entry.frame.type === 'console.output')
		.map(entry => Buffer.from((entry.frame as {data: string}).data, 'base64').toString())
		.join('');

describe('ConsoleHub', () => {
	it('streams what QEMU writes to the session, takes the writer\'s input back, and ends the session when the socket closes', async () => {
		hub.watch('vm-abcdefgh', paths(), {isNewProcess: true});
		await waitFor(() => qemuSide !== undefined, 5000, 'the hub to connect');
		const answer = hub.serve({v: 1, id: '1', from: 't', ts: 0, type: 'vm.console.attach', body: {vmId: 'vm-abcdefgh', output: ALICE_QUEUE, write: true}}, 'alice', 'host-a');
		expect(answer).toMatchObject({ok: true, value: {vmId: 'vm-abcdefgh', host: 'host-a', isWriter: true, tailFrames: 0}});
		const {session} = (answer as {value: {session: string}}).value;
		qemuSide!.write('root@kloud:/# ');
		await waitFor(() => output(ALICE_QUEUE) === 'root@kloud:/# ', 5000, 'the output frame');

		expect(hub.serve({v: 1, id: '2', from: 't', ts: 0, type: 'vm.console.input', body: {session, data: Buffer.from('uname\n').toString('base64')}}, 'alice', 'host-a')).toMatchObject({ok: true});
		await waitFor(() => fromAgent === 'uname\n', 5000, 'the input at QEMU');
		// Another user holding the session id is refused, and nothing of it reaches the guest.
		expect(hub.serve({v: 1, id: '3', from: 't', ts: 0, type: 'vm.console.input', body: {session, data: Buffer.from('reboot\n').toString('base64')}}, 'bob', 'host-a')).toMatchObject({ok: false, code: 'invalid_state'});

		qemuSide!.end();
		await waitFor(() => frames.some(entry => entry.frame.type === 'console.end'), 5000, 'the end frame');
		expect(frames.at(-1)!.frame).toMatchObject({type: 'console.end', reason: 'VM vm-abcdefgh stopped: its console closed'});
		expect(fromAgent).toBe('uname\n');
		expect(hub.serve({v: 1, id: '4', from: 't', ts: 0, type: 'vm.console.attach', body: {vmId: 'vm-abcdefgh', output: ALICE_QUEUE}}, 'alice', 'host-a')).toMatchObject({ok: false, code: 'invalid_state'});
	});

	it('gives a VM taken over from an earlier agent the tail of its log', async () => {
		hub.watch('vm-abcdefgh', paths(), {isNewProcess: false});
		await waitFor(() => qemuSide !== undefined, 5000, 'the hub to connect');
		// The log is read as the hub connects: a viewer attaching once it is in gets it first.
		let attempt = 0;
		await waitFor(
			() => {
				const queue = `amq.gen-probe-${attempt++}`;
				hub.serve({v: 1, id: '1', from: 't', ts: 0, type: 'vm.console.attach', body: {vmId: 'vm-abcdefgh', output: queue}}, 'alice', 'host-a');
				return output(queue) === 'earlier boot\r\n';
			},
			5000,
			'the log\'s tail',
		);
	});
});
