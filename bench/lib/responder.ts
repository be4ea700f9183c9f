/**
 * A plain amqplib responder process for the list floor: binds an exclusive queue to the fanout
 * exchange and answers every request with a fixed payload through Direct Reply-To. One process
 * per responder, like one agent process per host, so the floor pays the same process hops.
 */
import {readFile} from 'node:fs/promises';
import amqp from 'amqplib';

const [url, exchange, payloadFile] = process.argv.slice(2);
const payload = await readFile(payloadFile!);
const connection = await amqp.connect(url!);
const channel = await connection.createChannel();
const {queue} = await channel.assertQueue('', {exclusive: true});
await channel.bindQueue(queue, exchange!, '');
await channel.consume(
	queue,
	message => {
		if (message) {
			channel.publish('', String(message.properties.replyTo), payload, {correlationId: String(message.properties.correlationId)});
		}
	},
	{noAck: true},
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
	void connection.close().finally(() => process.exit(0));
});
