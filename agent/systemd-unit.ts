/**
 * The agent's systemd unit, as text (pure): `kloud-agent systemd-unit [flags…]` prints it with the
 * flags given on its ExecStart line. `KillMode=process`: stopping or restarting the agent's unit
 * ends the agent only, never its VMs (they run in sessions of their own and are adopted by the next
 * agent); `Restart=on-failure` brings a crashed agent back; ordered after the network and the broker,
 * so a host reboot finds both before the agent boots its VMs again.
 */

/** Quotes one ExecStart word the way systemd reads it back: `$` and `%` doubled, specials in double quotes. */
export function systemdWord(word: string): string {
	const escaped = word.replaceAll('%', '%%').replaceAll('$', '$$$$');
	if (escaped !== '' && /^[\w@%+=:,./-]+$/.test(escaped)) {
		return escaped;
	}

	return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`;
}

export type SystemdUnitOptions = {
	/** The command that runs the agent: e.g. [node, /usr/lib/kloud/dist/agent/cli.js]. */
	readonly command: readonly string[];
	/** The agent's flags, passed on as they are. */
	readonly flags: readonly string[];
};

export function renderSystemdUnit(options: SystemdUnitOptions): string {
	const execStart = [...options.command, ...options.flags].map(word => systemdWord(word)).join(' ');
	return `[Unit]
Description=kloud agent: runs this host's VMs on command from RabbitMQ
Documentation=https://github.com/kloud/kloud#readme
Wants=network-online.target
After=network-online.target rabbitmq-server.service

[Service]
Type=simple
ExecStart=${execStart}
# VMs outlive the agent: stopping or restarting the unit ends the agent process only.
KillMode=process
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
`;
}
