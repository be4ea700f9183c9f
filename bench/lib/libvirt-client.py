"""
A long-lived libvirt client for the benchmarks: the Python binding, driven one JSON request per
line on stdin, one JSON answer per line on stdout. Times are taken here, around the binding's
calls, as kloud's are taken around its client library's calls.

  {"op": "create", "name": N, "xml": X, "base": B, "disk": D}  overlay (qemu-img) + createXML, paused
  {"op": "list"}                                               listAllDomains
  {"op": "destroy", "name": N}                                 destroy (transient: gone after)
  {"op": "define", "name": N, "xml": X, "base": B, "disk": D}  overlay (qemu-img) + defineXML (untimed set-up)
  {"op": "start", "name": N}                                   create() of a defined domain, paused
  {"op": "reset", "name": N}                                   reset (a hard reboot: QEMU system_reset)
  {"op": "undefine", "name": N, "disk": D, "pool": P}          undefine + delete its volume (as
                                                               `virsh undefine --remove-all-storage`)
"""
import json
import subprocess
import sys
import time

import libvirt

conn = libvirt.open("qemu:///system")
# The domains this client created, as a long-lived client keeps its handles.
domains = {}


def serve():
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "create":
                started = time.perf_counter()
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", request["base"], "-F", "qcow2", request["disk"]], check=True)
                overlaid = time.perf_counter()
                domain = conn.createXML(request["xml"], libvirt.VIR_DOMAIN_START_PAUSED)
                done = time.perf_counter()
                domains[domain.name()] = domain
                answer = {"ms": (done - started) * 1000, "createXmlMs": (done - overlaid) * 1000, "name": domain.name()}
            elif op == "list":
                started = time.perf_counter()
                listed = conn.listAllDomains(0)
                answer = {"ms": (time.perf_counter() - started) * 1000, "count": len(listed)}
            elif op == "destroy":
                domain = domains.pop(request["name"], None) or conn.lookupByName(request["name"])
                started = time.perf_counter()
                domain.destroy()
                answer = {"ms": (time.perf_counter() - started) * 1000}
            elif op == "define":
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", request["base"], "-F", "qcow2", request["disk"]], check=True)
                domain = conn.defineXML(request["xml"])
                domains[domain.name()] = domain
                answer = {"ms": 0, "name": domain.name()}
            elif op == "start":
                domain = domains.get(request["name"]) or conn.lookupByName(request["name"])
                started = time.perf_counter()
                domain.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
                answer = {"ms": (time.perf_counter() - started) * 1000}
            elif op == "reset":
                domain = domains.get(request["name"]) or conn.lookupByName(request["name"])
                started = time.perf_counter()
                domain.reset(0)
                answer = {"ms": (time.perf_counter() - started) * 1000}
            elif op == "undefine":
                domain = domains.pop(request["name"], None) or conn.lookupByName(request["name"])
                # Untimed: the pool learns of the overlay made outside libvirt.
                conn.storagePoolLookupByName(request["pool"]).refresh(0)
                started = time.perf_counter()
                volume = conn.storageVolLookupByPath(request["disk"])
                domain.undefine()
                volume.delete(0)
                answer = {"ms": (time.perf_counter() - started) * 1000}
            else:
                answer = {"error": f"unknown op {op}"}
        except (libvirt.libvirtError, subprocess.CalledProcessError) as error:
            answer = {"error": str(error)}
        print(json.dumps(answer), flush=True)


print(json.dumps({"ready": True}), flush=True)
try:
    serve()
except KeyboardInterrupt:
    pass  # Ctrl-C reaches the whole group: the benchmark cleans up
