import {describe, expect, it} from 'vitest';
import {BrokerUrlError, TlsConfigError, brokerAddress, brokerUrls, redactUrl, retryDelayMs, socketOptions, tlsProblem, urlUser} from '../source/broker/connection.js';

describe('socketOptions', () => {
	const ca = Buffer.from('CA');
	const cert = Buffer.from('CERT');
	const key = Buffer.from('KEY');
	it('names the connection and turns Nagle off', () => {
		expect(socketOptions({url: 'amqp://127.0.0.1', connectionName: 'kloud-agent@a'})).toEqual({clientProperties: {connection_name: 'kloud-agent@a'}, timeout: 5000, noDelay: true});
	});

	it('hands the CA and client certificate to the TLS socket of an amqps:// URL', () => {
		expect(socketOptions({url: 'amqps://broker:5671', connectionName: 'x', tls: {ca: [ca], cert, key}})).toMatchObject({ca: [ca], cert, key});
	});

	it.each([
		['certificates with a plain amqp:// URL', {url: 'amqp://broker', connectionName: 'x', tls: {ca: [ca]}}, /need an amqps:\/\/ URL, not amqp:\/\/broker/],
		['a certificate without its key', {url: 'amqps://broker', connectionName: 'x', tls: {cert}}, /needs its key/],
		['a key without its certificate', {url: 'amqps://broker', connectionName: 'x', tls: {key}}, /needs its key/],
	])('refuses %s', (_name, options, message) => {
		expect(() => socketOptions(options)).toThrow(TlsConfigError);
		expect(() => socketOptions(options)).toThrow(message);
	});
});

describe('urlUser', () => {
	it.each([
		['amqp://alice:secret@broker:5672', 'alice'],
		['amqps://b%40ob:x@broker', 'b@ob'],
		['amqp://broker', 'guest'],
		['not a url', 'guest'],
	])('%s logs in as %s', (url, user) => {
		expect(urlUser(url)).toBe(user);
	});
});

describe('brokerUrls', () => {
	it.each([
		['amqp://a:5672', ['amqp://a:5672']],
		['amqp://a:5701, amqp://a:5702 ,amqps://b', ['amqp://a:5701', 'amqp://a:5702', 'amqps://b']],
		['amqp://a,,amqp://b,', ['amqp://a', 'amqp://b']],
	])('%s lists %j', (list, urls) => {
		expect(brokerUrls(list)).toEqual(urls);
	});

	it.each([
		['', /no broker URL/],
		[' , ', /no broker URL/],
		['amqp://a,http://b', /starts with amqp:\/\/ or amqps:\/\/, not http:\/\/b/],
		['amqp://a,b:5672x', /starts with amqp|not a broker URL/],
		['amqp://u:secret@a,nonsense', /not a broker URL: \(invalid URL\)/],
	])('refuses %j', (list, message) => {
		expect(() => brokerUrls(list)).toThrow(BrokerUrlError);
		expect(() => brokerUrls(list)).toThrow(message);
	});

	it('never shows a password in its error', () => {
		expect(() => brokerUrls('amqp://u:secret@a,ftp://u:hunter2@b')).toThrow(/ftp:\/\/u:\*\*\*@b/);
	});
});

describe('a URL list', () => {
	it('hides every password', () => {
		expect(redactUrl('amqp://u:p1@a:5701,amqp://u:p2@b:5702')).toBe('amqp://u:***@a:5701,amqp://u:***@b:5702');
	});

	it('logs in as the first URL\'s user', () => {
		expect(urlUser('amqp://alice:x@a:5701,amqp://alice:x@b:5702')).toBe('alice');
	});

	it('needs amqps:// on every URL when certificates are given', () => {
		expect(() => socketOptions({url: 'amqps://a:5711,amqp://b:5702', connectionName: 'x', tls: {ca: [Buffer.from('CA')]}})).toThrow(/not amqp:\/\/b:5702/);
	});

	it.each([
		['amqp://127.0.0.1:5702', '127.0.0.1:5702'],
		['amqp://guest:guest@broker', 'broker:5672'],
		['amqps://broker/vhost', 'broker:5671'],
	])('%s is the node %s', (url, address) => {
		expect(brokerAddress(url)).toBe(address);
	});
});

describe('retryDelayMs', () => {
	it.each([
		// One URL: 100, 200, 400 … as before clusters.
		[1, 1, 100], [2, 1, 200], [3, 1, 400], [7, 1, 5000],
		// Three URLs: a first round of 100 ms each (the next node is tried at once), then doubling per round.
		[1, 3, 100], [3, 3, 100], [4, 3, 200], [6, 3, 200], [7, 3, 400], [30, 3, 5000],
	])('attempt %i over %i URLs waits %i ms', (attempt, urlCount, delay) => {
		expect(retryDelayMs(attempt, urlCount)).toBe(delay);
	});
});

describe('tlsProblem', () => {
	const failure = (code: string) => Object.assign(new Error('x'), {code});
	it.each([
		['SELF_SIGNED_CERT_IN_CHAIN', /not signed by a CA this client trusts/],
		['UNABLE_TO_VERIFY_LEAF_SIGNATURE', /not signed by a CA this client trusts/],
		['CERT_HAS_EXPIRED', /broker's TLS certificate has expired/],
		['ERR_TLS_CERT_ALTNAME_INVALID', /does not name the host/],
		['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', /wants a client certificate/],
		['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', /client certificate: it has expired/],
		['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', /refused the client certificate/],
		['ERR_SSL_SOMETHING_NEW', /TLS handshake failed \(ERR_SSL_SOMETHING_NEW\)/],
	])('%s: %s', (code, message) => {
		expect(tlsProblem(failure(code))).toMatch(message);
	});

	it.each(['ECONNREFUSED', 'ETIMEDOUT'])('%s is no TLS problem (a retry may help)', code => {
		expect(tlsProblem(failure(code))).toBeUndefined();
	});
});
