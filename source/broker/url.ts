/** What a broker URL (or a comma-separated list of them) says, without amqplib: the TUI's first frame shows it before amqplib is loaded. */

/**
 * The RabbitMQ user a URL logs in as (amqplib's default is `guest`): requests carry it as their
 * `userId`, which the broker checks against the connection's user.
 */
export function urlUser(url: string): string {
	try {
		// Every node of a cluster shares its users: the first URL of a list names the user.
		const {username} = new URL(url.split(',')[0]!.trim());
		return username === '' ? 'guest' : decodeURIComponent(username);
	} catch {
		return 'guest';
	}
}

/** The URL (or each of a list) with its password hidden, for logs and the TUI header. */
export function redactUrl(url: string): string {
	if (url.includes(',')) {
		return url.split(',').map(one => redactUrl(one.trim())).join(',');
	}

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
