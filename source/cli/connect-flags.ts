/** The command line's broker flags as connection options: TLS files, and whose events count. */
import {readFileSync} from 'node:fs';
import type {TlsOptions} from '../broker/connection.js';
import {brokerUrls, urlUser} from '../broker/url.js';
import {parseAgentUsers} from '../protocol/limits.js';
import {UsageError} from './args.js';

/** `--agent-users U1,U2` as a list; none given: the user of the broker URL. */
export function agentUsers(flags: {readonly agentUsers: string; readonly amqp: string}): string[] {
	return [...parseAgentUsers(flags.agentUsers, urlUser(flags.amqp))];
}

/** The `--ca`, `--cert` and `--key` files, read; undefined without any. */
export function tlsOptions(flags: {readonly amqp: string; readonly ca?: string; readonly cert?: string; readonly key?: string}): TlsOptions | undefined {
	if (flags.ca === undefined && flags.cert === undefined && flags.key === undefined) {
		return undefined;
	}

	let urls: string[];
	try {
		urls = brokerUrls(flags.amqp);
	} catch (error) {
		throw new UsageError(`--amqp: ${(error as Error).message}`);
	}

	if (urls.some(url => !url.startsWith('amqps://'))) {
		throw new UsageError(urls.length === 1 ? '--ca, --cert and --key need an amqps:// broker URL' : '--ca, --cert and --key need amqps:// broker URLs, every one of the --amqp list');
	}

	if ((flags.cert === undefined) !== (flags.key === undefined)) {
		throw new UsageError('--cert and --key go together');
	}

	const read = (flag: string, path: string | undefined) => {
		if (path === undefined) {
			return undefined;
		}

		try {
			return readFileSync(path);
		} catch (error) {
			throw new UsageError(`cannot read ${flag} ${path}: ${(error as Error).message}`);
		}
	};

	const ca = read('--ca', flags.ca);
	const cert = read('--cert', flags.cert);
	const key = read('--key', flags.key);
	return {...(ca ? {ca: [ca]} : {}), ...(cert ? {cert} : {}), ...(key ? {key} : {})};
}
