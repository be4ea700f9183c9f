/** What a broker URL says, without amqplib: the TUI's first frame shows it before amqplib is loaded. */

/**
 * The RabbitMQ user a URL logs in as (amqplib's default is `guest`): requests carry it as their
 * `userId`, which the broker checks against the connection's user.
 */
export function urlUser(url: string): string {
	try {
		const {username} = new URL(url);
		return username === '' ? 'guest' : decodeURIComponent(username);
	} catch {
		return 'guest';
	}
}

/** The URL with its password hidden, for logs and the TUI header. */
export function redactUrl(url: string): string {
	try {
		const parsed = new URL(url);
		if (parsed.password) {
			parsed.password = '***';
		}

		return parsed.toString();
	} catch {
		return '(invalid URL)';
	}
}
