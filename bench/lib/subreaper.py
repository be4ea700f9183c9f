"""
Runs virtlogd and libvirtd as children of a child subreaper, as a systemd host would.

This machine's PID 1 reaps orphans only every ~1.8 s, and libvirt waits for a destroyed QEMU to be
reaped, so `virsh destroy` takes 1.2-2 s without a subreaper (FACTS.md). QEMU is daemonized by
libvirtd; as a subreaper this process becomes its parent and reaps it at once.

Prints {"virtlogd": PID, "libvirtd": PID} on stdout once both are spawned. On SIGTERM (or when the
process that started it dies) it stops libvirtd, then virtlogd, kills any orphan left (a QEMU a
crashed benchmark did not destroy) and exits once it has no child left.
"""
import ctypes
import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")
libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

virtlogd = os.posix_spawnp("virtlogd", ["virtlogd"], os.environ)
libvirtd = os.posix_spawnp("libvirtd", ["libvirtd"], os.environ)
alive = {virtlogd, libvirtd}
print(json.dumps({"virtlogd": virtlogd, "libvirtd": libvirtd}), flush=True)


def children():
    """Pids whose parent is this process (orphans adopted as subreaper included)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid():
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def stop(*_):
    if libvirtd in alive:
        os.kill(libvirtd, signal.SIGTERM)
    elif virtlogd in alive:
        os.kill(virtlogd, signal.SIGTERM)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        break
    alive.discard(pid)
    if pid == libvirtd and virtlogd in alive:
        os.kill(virtlogd, signal.SIGTERM)
    elif pid == virtlogd and libvirtd in alive:
        os.kill(libvirtd, signal.SIGTERM)
    if not alive:
        # Both daemons are gone: whatever is left is an orphan (a QEMU not destroyed): kill it.
        for orphan in children():
            try:
                os.kill(orphan, signal.SIGKILL)
            except ProcessLookupError:
                pass
