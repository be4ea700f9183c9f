/**
 * Which peers' underlay addresses may become VXLAN destinations (FDB entries): only those inside
 * `--underlay-cidr`. A heartbeat naming any other address (forged, or a misconfigured host) is
 * ignored for VXLAN, so private-network broadcasts never go to an address an attacker picked.
 */
import {formatIpv4, parseCidr, parseIpv4} from './network.js';

/** The network a peer's underlay address must fall in when `--underlay-cidr` is not given: the /24 around this host's own. */
export function defaultUnderlayCidr(underlay: string | undefined): string | undefined {
	const address = underlay === undefined ? undefined : parseIpv4(underlay);
	if (address === undefined) {
		return undefined;
	}

	return `${formatIpv4(address - (address % 256))}/24`;
}

/** Whether `address` (dotted IPv4) lies in `cidr`; false for anything that is not an IPv4 address. */
export function isInCidr(address: string, cidr: string): boolean {
	const value = parseIpv4(address);
	const {network, prefix} = parseCidr(cidr);
	return value !== undefined && value - (value % 2 ** (32 - prefix)) === network;
}

type Logger = {warn(object: object, message?: string): void};

/** Keeps peers whose underlay is in the CIDR; says once per address when one is ignored. */
export class UnderlayFilter {
	readonly #cidr: string | undefined;
	readonly #log: Logger;
	readonly #warned = new Set<string>();

	/** Without a CIDR (no `--underlay`: this host joins no VXLAN) every peer is refused, silently. */
	constructor(cidr: string | undefined, log: Logger) {
		if (cidr !== undefined) {
			parseCidr(cidr);
		}

		this.#cidr = cidr;
		this.#log = log;
	}

	accepts(peer: {readonly hostId: string; readonly underlay: string}): boolean {
		if (this.#cidr === undefined) {
			return false;
		}

		if (isInCidr(peer.underlay, this.#cidr)) {
			return true;
		}

		// Bounded: a flood of distinct addresses is not remembered (or logged) without end.
		if (this.#warned.size < 256 && !this.#warned.has(peer.underlay)) {
			this.#warned.add(peer.underlay);
			this.#log.warn({host: peer.hostId, underlay: peer.underlay, underlayCidr: this.#cidr}, 'ignored a peer whose underlay address is outside --underlay-cidr');
		}

		return false;
	}
}
