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

/** A URL list is empty, or one of its URLs is not an amqp:// or amqps:// URL. */
export class BrokerUrlError extends Error {
	override name = 'BrokerUrlError';
}

/**
 * The URLs of a comma-separated list (`--amqp`, `KLOUD_AMQP_URL`), each checked: an empty list or
 * a URL that is not amqp:// or amqps:// is refused with a clear error instead of a connect failure.
 */
export function brokerUrls(list: string): string[] {
	const urls = list.split(',').map(url => url.trim()).filter(url => url !== '');
	if (urls.length === 0) {
		throw new BrokerUrlError('no broker URL given');
	}

	for (const url of urls) {
		let protocol: string;
		try {
			protocol = new URL(url).protocol;
		} catch {
			throw new BrokerUrlError(`not a broker URL: ${redactUrl(url)}`);
		}

		if (protocol !== 'amqp:' && protocol !== 'amqps:') {
			throw new BrokerUrlError(`a broker URL starts with amqp:// or amqps://, not ${redactUrl(url)}`);
		}
	}

	return urls;
}
