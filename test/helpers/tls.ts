/**
 * Certificates for TLS tests, made with openssl in a dir of the test's own: a CA, a server
 * certificate for 127.0.0.1/localhost, a client certificate, an expired client certificate (same
 * CA), and a second CA that signed nothing the broker serves (a client trusting it must refuse).
 */
import {execFile} from 'node:child_process';
import {writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {promisify} from 'node:util';

const run = promisify(execFile);

export type TestCertificates = {
	readonly dir: string;
	/** The CA that signed the server's and the clients' certificates. */
	readonly ca: string;
	readonly server: string;
	readonly serverKey: string;
	readonly client: string;
	readonly clientKey: string;
	/** Signed by `ca`, but its validity ended yesterday; its key is `clientKey`. */
	readonly expiredClient: string;
	/** A CA of its own: the broker's certificate does not chain to it. */
	readonly otherCa: string;
};

export async function makeCertificates(dir: string): Promise<TestCertificates> {
	const path = (name: string) => join(dir, name);
	const openssl = async (args: readonly string[]) => run('openssl', [...args], {cwd: dir});
	const selfSigned = async (name: string, subject: string) =>
		openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', subject]);
	const request = async (name: string, subject: string) => openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subject]);
	const sign = async (csr: string, out: string, days: string, extra: readonly string[] = []) =>
		openssl(['x509', '-req', '-in', csr, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', out, '-days', days, ...extra]);

	await Promise.all([selfSigned('ca', '/CN=kloud-test-ca'), selfSigned('other-ca', '/CN=kloud-other-ca'), request('server', '/CN=localhost'), request('client', '/CN=guest')]);
	await writeFile(path('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
	await sign('server.csr', 'server.pem', '2', ['-extfile', 'server.ext']);
	await sign('client.csr', 'client.pem', '2');
	// A negative validity: notAfter lies a day before notBefore, so the certificate has expired.
	await sign('client.csr', 'expired-client.pem', '-1');
	return {
		dir,
		ca: path('ca.pem'),
		server: path('server.pem'),
		serverKey: path('server-key.pem'),
		client: path('client.pem'),
		clientKey: path('client-key.pem'),
		expiredClient: path('expired-client.pem'),
		otherCa: path('other-ca.pem'),
	};
}
