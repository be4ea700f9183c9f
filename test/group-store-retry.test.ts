import {describe, expect, it} from 'vitest';
import {isStreamStarting} from '../source/broker/group-store.js';

describe('a groups stream not served yet', () => {
	it.each([
		['its home node restarting', 'Operation failed: BasicConsume; 404 (NOT-FOUND) with message "NOT_FOUND - home node \'rabbit@x\' of durable queue \'queue \'k.groups\' in vhost \'/\'\' is down or inaccessible"', true],
		// CI's cluster pass: after stop_app on each node in turn, every node answered this for a moment.
		['no replica back on the node yet', 'Operation failed: BasicConsume; 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - queue \'queue \'k.groups\' in vhost \'/\'\' does not have a replica on the local node"', true],
		['access refused is not transient', 'Operation failed: BasicConsume; 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to queue \'k.groups\' refused"', false],
	])('%s: wait and try again = %s', (_, message, expected) => {
		expect(isStreamStarting(message)).toBe(expected);
	});
});
