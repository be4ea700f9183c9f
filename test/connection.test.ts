import {describe, expect, it} from 'vitest';
import {TlsConfigError, socketOptions, urlUser} from '../source/broker/connection.js';

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
