/** `kloud-tui --help`: static text, so printing it loads nothing else. */
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

export const USAGE = `
  The operator's terminal UI for kloud, and its scriptable subcommands.

  Usage
    $ kloud-tui [--refresh SECONDS]      the live VM table across every host (press ? for keys)
    $ kloud-tui list [--json]            every VM on every host
    $ kloud-tui start --image NAME [--host H] [--memory MB] [--cpus N]
                     [--network private|public|none|user] [--user-data FILE]
                     [--ssh-key FILE]... [--json]
    $ kloud-tui stop VM_ID [--kill] [--host H] [--grace SECONDS] [--json]
    $ kloud-tui migrate VM_ID [--to HOST] [--json]   live: the guest runs on (default: the host
                                         with the most free memory that has its image)
    $ kloud-tui cordon|uncordon HOST     no new VMs there (starts, migrations in) / again
    $ kloud-tui drain HOST [--json]      cordon, then migrate each running VM away
    $ kloud-tui console VM_ID [--bytes N] [--json]   the tail of a VM's serial console (default 64 KiB)
    $ kloud-tui hosts [--json]           hosts, their capacity, and who did not answer
    $ kloud-tui images [--json]          base images and the hosts that have them

  Global options
    --amqp URL         broker URL [KLOUD_AMQP_URL] (default ${DEFAULT_AMQP_URL})
    --namespace NAME   [KLOUD_NAMESPACE] (default kloud)
    --timeout SECONDS  how long to wait for answers (list/hosts/images: 2, start: 30,
                       stop: 10 plus the grace period)
    --json             machine-readable output on stdout
    --ca FILE          CA certificate(s) to trust for an amqps:// URL (PEM)
    --cert FILE        client certificate for amqps:// (PEM), with --key FILE
    --agent-users U1,U2  RabbitMQ users whose events (heartbeats, VM events) count
                       [KLOUD_AGENT_USERS] (default: your own user; a tenant names the agents')

  Start options
    --user-data FILE   given to the guest in its NoCloud seed (at most 64 KiB): the demo
                       image runs it if it starts with #!, cloud-init images as cloud-init does
    --ssh-key FILE     OpenSSH public key(s) for the guest (meta-data public-keys); repeatable

  stop and console without --host find the VM's owner with one small round that ends at the
  owner's answer.

  Errors print one line on stderr and exit with status 1 (2 for bad usage).
`;
