"""
A long-lived libvirt client for the benchmarks: the Python binding, driven one JSON request per
line on stdin, one JSON answer per line on stdout. Times are taken here, around the binding's
calls, as kloud's are taken around its client library's calls.

  {"op": "create", "name": N, "xml": X, "base": B, "disk": D}  overlay (qemu-img) + createXML, paused
  {"op": "list"}                                               listAllDomains
  {"op": "destroy", "name": N}                                 destroy (transient: gone after)
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
