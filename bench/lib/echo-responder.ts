/**
 * A plain amqplib echo process for the console's broker floor: the console's two broker hops
 * without kloud. It consumes an exclusive queue bound to a topic exchange (manual acks, as an
 * agent its host queue) and publishes each message's body back to the queue its `replyTo` names
 * through the default exchange (as an agent a console frame to a viewer's queue).
 */
import amqp from 'amqplib';

const [url, exchange, routingKey] = process.argv.slice(2);
const connection = await amqp.connect(url!, {noDelay: true});
const channel = await connection.createChannel();
await channel.prefetch(128);
const {queue} = await channel.assertQueue('', {exclusive: true});
await channel.bindQueue(queue, exchange!, routingKey!);
await channel.consume(
	queue,
	message => {
		if (message) {
			channel.publish('', String(message.properties.replyTo), message.content);
			channel.ack(message);
		}
	},
	{noAck: false},
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
	void connection.close().finally(() => process.exit(0));
});
