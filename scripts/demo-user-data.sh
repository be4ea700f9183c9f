#!/bin/sh
# The demo's user-data (kloud-tui start --user-data FILE): runs once at boot inside the guest, its
# output on the serial console (kloud-tui console VM_ID, or Enter on the VM in kloud-tui).
echo "hello from user-data on $(hostname): kernel $(uname -r), up $(cut -d ' ' -f 1 /proc/uptime) s"
echo "its web server says: $(wget -q -O - http://127.0.0.1/ | sed -n 's:.*<h1>\(.*\)</h1>.*:\1:p')"
