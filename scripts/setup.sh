#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine (root, Node >= 20): system packages that are missing,
# RabbitMQ running, npm dependencies installed and the project built. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed (found: $(node --version 2>/dev/null || echo none)). Install it, e.g. from https://deb.nodesource.com, then run this again."

# package → a file that proves it is installed
declare -A probe=(
	[qemu-system-x86]=/usr/bin/qemu-system-x86_64
	[qemu-utils]=/usr/bin/qemu-img
	[rabbitmq-server]=/usr/sbin/rabbitmq-server
	[python3-pika]=/usr/lib/python3/dist-packages/pika/__init__.py
	[iproute2]=/usr/sbin/ip
	[tmux]=/usr/bin/tmux
	# networking: private networks' DHCP (and lease release), NAT, and the network tests' probes
	[dnsmasq-base]=/usr/sbin/dnsmasq
	[dnsmasq-utils]=/usr/bin/dhcp_release
	[nftables]=/usr/sbin/nft
	[iputils-ping]=/usr/bin/ping
	[curl]=/usr/bin/curl
	# SSH into demo guests (test/e2e/ssh.test.ts)
	[openssh-client]=/usr/bin/ssh
	# the demo image builder (a FAT superfloppy with syslinux) and NoCloud seed ISOs
	[syslinux]=/usr/bin/syslinux
	[mtools]=/usr/bin/mcopy
	[genisoimage]=/usr/bin/genisoimage
	# the TLS tests make their CA and certificates
	[openssl]=/usr/bin/openssl
)
missing=()
for package in "${!probe[@]}"; do
	[ -e "${probe[$package]}" ] || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		die "missing packages: ${missing[*]}. As root run: apt-get update && apt-get install -y ${missing[*]}"
	fi
	command -v apt-get >/dev/null || die "missing packages: ${missing[*]}, and there is no apt-get here: install them with your package manager"
	say "installing ${missing[*]} (apt-get)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The demo image builder fetches Debian packages with apt-get download: apt needs its package lists.
if command -v apt-get >/dev/null && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
	[ "$(id -u)" -eq 0 ] || die 'apt has no package lists (the demo image is built from Debian packages). As root run: apt-get update'
	say 'fetching the apt package lists (apt-get update)'
	apt-get update -qq
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
	say 'starting RabbitMQ'
	rabbitmq-server -detached >/dev/null 2>&1 || true
fi
rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || rabbitmqctl -q wait --timeout 60 --pid "$(pgrep -f beam.smp | head -1)" >/dev/null 2>&1 || die 'RabbitMQ did not start: see /var/log/rabbitmq/'

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	say 'installing npm dependencies'
	# npm ci refuses this lock file under npm 11 (optional platform packages); install honours the lock
	npm install --no-audit --no-fund --loglevel=error
else
	npm run --silent build
fi
say 'ready'
