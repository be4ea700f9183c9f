/** `kloud-tui --help`: static text, so printing it loads nothing else. */
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

export const USAGE = `
  The operator's terminal UI for kloud, and its scriptable subcommands.

  Usage
    $ kloud-tui [--refresh SECONDS]      the live VM table across every host (press ? for keys)
    $ kloud-tui list [--json]            every VM on every host
    $ kloud-tui start --image NAME [--host H] [--memory MB] [--cpus N]
                     [--network private|public|none|user] [--user-data FILE]
                     [--ssh-key FILE]... [--restart no|on-failure|always]
                     [--disk-size SIZE] [--json]
    $ kloud-tui stop VM_ID [--kill] [--host H] [--grace SECONDS] [--json]
                                         the VM is kept, stopped, with its disk
    $ kloud-tui start VM_ID [--host H] [--json]   boot a stopped VM again (same id, MAC,
                                         disk, seed); \`boot VM_ID\` is the same
    $ kloud-tui reboot VM_ID [--hard] [--host H] [--json]   ACPI reboot (--hard: reset)
    $ kloud-tui delete VM_ID [--yes] [--grace SECONDS] [--host H] [--json]
                                         stop it if needed, remove its disk, seed and IP
    $ kloud-tui migrate VM_ID [--to HOST] [--json]   live: the guest runs on (default: the host
                                         with the most free memory that has its image)
    $ kloud-tui cordon|uncordon HOST     no new VMs there (starts, migrations in) / again
    $ kloud-tui drain HOST [--json]      cordon, then migrate each running VM away
    $ kloud-tui console VM_ID [--bytes N] [--json]   the tail of a VM's serial console (default 64 KiB)
    $ kloud-tui console VM_ID --attach [--read-only] [--until PATTERN]
                                         a live terminal on the VM's serial console (ctrl-] detaches);
                                         from a pipe: stdin to the guest, output to stdout, ends when
                                         the output matches PATTERN (or --timeout, 30 s, passes)
    $ kloud-tui hosts [--json]           hosts, their capacity, and who did not answer
    $ kloud-tui images [--json]          base images and the hosts that have them
    $ kloud-tui group create NAME --image X --size N [--min A --max B] [--memory --cpus
                     --network --user-data --ssh-key] [--restart no|on-failure|always]
                     [--health none|console:REGEX|tcp:PORT] [--health-grace S]
                     [--unhealthy-after S] [--host-grace S]
                     [--scale-on cpu>70% [--scale-low PCT] [--scale-step N] [--scale-window S]
                      [--scale-cooldown S] [--scale-warmup S]]
    $ kloud-tui group update NAME [any create option; --scale-on none: off]
                                         new members get the new spec; running ones are kept
    $ kloud-tui group list|show NAME|scale NAME N|delete NAME [--wait] [--json]
                                         self-healing, auto-scaling groups (README, "Groups");
                                         delete --wait returns once the members are gone
                                         (or --timeout, 60 s, passes)

  Global options
    --amqp URL[,URL…]  broker URL, or the nodes of a cluster, tried in order (and the
                       next on a drop) [KLOUD_AMQP_URL] (default ${DEFAULT_AMQP_URL})
    --namespace NAME   [KLOUD_NAMESPACE] (default kloud)
    --timeout SECONDS  how long to wait for answers (list/hosts/images: 2, start: 30,
                       stop/reboot/delete: 10 (plus the grace period), start VM_ID: 30)
    --json             machine-readable output on stdout
    --ca FILE          CA certificate(s) to trust for an amqps:// URL (PEM)
    --cert FILE        client certificate for amqps:// (PEM), with --key FILE
    --agent-users U1,U2  RabbitMQ users whose events (heartbeats, VM events) count
                       [KLOUD_AGENT_USERS] (default: your own user; a tenant names the agents')

  Start options
    --user-data FILE   given to the guest in its NoCloud seed (at most 64 KiB): the demo
                       image runs it if it starts with #!, cloud-init images as cloud-init does
    --ssh-key FILE     OpenSSH public key(s) for the guest (meta-data public-keys); repeatable
    --restart POLICY   when its QEMU ends unasked: no (stay crashed), on-failure (default: boot
                       again unless the guest powered off), always; backoff, then gives up
    --disk-size SIZE   the disk's virtual size, e.g. 10G (M, G, T; never below the image's)

  delete asks on the terminal, naming what is lost; without a terminal it needs --yes (else
  it refuses with status 2). --grace: seconds for a graceful power-off first (default 0).

  stop, start VM_ID, reboot, delete and console without --host find the VM's owner with one small round that ends at the
  owner's answer.

  Errors print one line on stderr and exit with status 1 (2 for bad usage).
`;
