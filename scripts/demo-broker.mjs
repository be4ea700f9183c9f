#!/usr/bin/env node
/**
 * The demo's two broker chores, outside the product (which never deletes topology):
 *   demo-broker.mjs probe URL           exit 0 when the broker accepts a connection, 1 (with why) if not
 * URL may be a comma-separated list (the nodes of a cluster): the first that takes a connection serves.
 *   demo-broker.mjs clean URL NAMESPACE delete the namespace's durable queues and exchanges, so the
 *                                       broker is left as the demo found it
 * The names come from the built protocol module, so they follow the code.
 */
import process from 'node:process';
import amqp from 'amqplib';
import {checkNamespace, topology} from '../dist/source/protocol/names.js';

const [command, url, namespace] = process.argv.slice(2);

/** The first URL of the list that takes a connection. */
async function connect() {
	let lastError;
	for (const one of url.split(',')) {
		try {
			return await amqp.connect(one.trim(), {timeout: 3000});
		} catch (error) {
			lastError = error;
		}
	}

	throw lastError;
}

async function probe() {
	const connection = await connect();
	await connection.close();
}

async function clean() {
	const problem = checkNamespace(namespace ?? '');
	if (problem) {
		throw new Error(problem);
	}

	const topo = topology(namespace);

	const connection = await connect();
	try {
		// A failed delete closes its channel: one channel per name.
		const remove = async (kind, name) => {
			const channel = await connection.createChannel();
			channel.on('error', () => {});
			await (kind === 'queue' ? channel.deleteQueue(name) : channel.deleteExchange(name)).catch(() => {});
			await channel.close().catch(() => {});
		};

		for (const queue of [topo.startQueue, topo.deadLetters]) {
			await remove('queue', queue);
		}

		for (const exchange of [topo.commandExchange, topo.eventExchange, topo.deadLetters]) {
			await remove('exchange', exchange);
		}
	} finally {
		await connection.close();
	}
}

try {
	if (command === 'probe' && url) {
		await probe();
	} else if (command === 'clean' && url) {
		await clean();
	} else {
		process.stderr.write('usage: demo-broker.mjs probe URL | clean URL NAMESPACE\n');
		process.exitCode = 2;
	}
} catch (error) {
	process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
	process.exitCode = 1;
}
