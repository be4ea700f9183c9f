"""
Runs virtlogd and libvirtd as children of a child subreaper, as a systemd host would.

This machine's PID 1 reaps orphans only every ~1.8 s, and libvirt waits for a destroyed QEMU to be
reaped, so `virsh destroy` takes 1.2-2 s without a subreaper (FACTS.md). QEMU is daemonized by
libvirtd; as a subreaper this process becomes its parent and reaps it at once.

Prints {"virtlogd": PID, "libvirtd": PID} on stdout once both are spawned. On SIGTERM (or when its
stdin closes: the benchmark that started it is gone) it stops libvirtd, then virtlogd, kills any
orphan left (a QEMU a crashed benchmark did not destroy) and exits once it has no child left.
"""
import ctypes
import json
import os
import signal
import sys
import threading

PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")

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


def signal_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop(*_):
    # libvirtd first: it still talks to virtlogd while it shuts down.
    if libvirtd in alive:
        signal_quietly(libvirtd, signal.SIGTERM)
    elif virtlogd in alive:
        signal_quietly(virtlogd, signal.SIGTERM)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def watch_stdin():
    sys.stdin.read()
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=watch_stdin, daemon=True).start()

while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        break
    alive.discard(pid)
    if pid == libvirtd and virtlogd in alive:
        signal_quietly(virtlogd, signal.SIGTERM)
    elif pid == virtlogd and libvirtd in alive:
        signal_quietly(libvirtd, signal.SIGTERM)
    if not alive:
        # Both daemons are gone: whatever is left is an orphan (a QEMU not destroyed): kill it.
        for orphan in children():
            signal_quietly(orphan, signal.SIGKILL)
