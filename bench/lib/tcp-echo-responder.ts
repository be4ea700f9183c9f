/**
 * The machine's own floor under the console's broker hops: a Node process that echoes on a
 * loopback TCP socket (TCP_NODELAY, as the broker's sockets). One round trip to it is two process
 * wake-ups; the broker's two hops are four legs like it, plus the broker's own work.
 */
import {createServer} from 'node:net';

const server = createServer(socket => {
	socket.setNoDelay(true);
	socket.on('data', data => socket.write(data));
	socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
	const address = server.address();
	process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
