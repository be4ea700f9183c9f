#!/usr/bin/env bash
# The demo: a three-host kloud on this machine. Builds the demo image once (cached in .kloud/images),
# starts RabbitMQ if it is not running, makes two broker users of its own (never guest), starts agents
# host-a, host-b and host-c (own state dirs, tenants mode, QEMU user-mode networking: nothing on this
# machine's network changes, and no guest can reach the host) in a namespace of their own,
# boots demo VMs (one with user-data), shows the CLI at work, then opens kloud-tui. When it ends (q,
# Ctrl-C, an error) it stops the demo VMs and the agents and removes its state, broker topology and users.
#
#   npm run demo                  the walk-through, then kloud-tui (without a terminal: the list)
#   npm run demo -- --check       non-interactive: stack up, one VM booted with user-data and listed
#                                 across the three hosts, a graceful stop, teardown; exit 0 if all worked
#   npm run demo -- --cluster     the same on a 3-node RabbitMQ cluster (scripts/cluster.sh, beside this
#                                 machine's broker): agents spread over the nodes, and one node is
#                                 stopped and started again under them (with --check too)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
is_check=false
is_cluster=false
for arg in "$@"; do
	case $arg in
	--check) is_check=true ;;
	--cluster) is_cluster=true ;;
	-h | --help) usage; exit 0 ;;
	*) printf 'demo: unknown option %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
	esac
done

NS=${KLOUD_NAMESPACE:-kloud-demo}
# This machine's broker, the one rabbitmqctl manages: the demo makes its users there.
BROKER=127.0.0.1:5672
BROKERS=($BROKER)
# --cluster: three nodes of the demo's own (names kdemoN@localhost, ports 5761-5763, data in /tmp).
export KLOUD_CLUSTER_DIR=${KLOUD_CLUSTER_DIR:-/tmp/kloud-demo-cluster} KLOUD_CLUSTER_NAME=${KLOUD_CLUSTER_NAME:-kdemo} KLOUD_CLUSTER_PORT=${KLOUD_CLUSTER_PORT:-5761}
if $is_cluster; then
	BROKERS=()
	for i in 0 1 2; do BROKERS+=("127.0.0.1:$((KLOUD_CLUSTER_PORT + i))"); done
	BROKER=${BROKERS[0]}
fi
cluster() { bash "$REPO/scripts/cluster.sh" "$@"; }
# rabbitmqctl for the broker the demo runs on (a cluster's users live on every node).
ctl() { if $is_cluster; then cluster ctl 1 "$@"; else rabbitmqctl "$@"; fi; }
# USER PASSWORD → the URL list of every broker (comma-separated, what --amqp takes).
amqp_urls() { local b urls=(); for b in "${BROKERS[@]}"; do urls+=("amqp://$1:$2@$b"); done; (IFS=,; echo "${urls[*]}"); }
IMAGES=${KLOUD_DEMO_IMAGES:-$REPO/.kloud/images}
HOSTS=(host-a host-b host-c)
export KLOUD_NAMESPACE=$NS
AGENT=(node "$REPO/dist/agent/cli.js")
TUI=(node "$REPO/dist/bin/kloud-tui.js")

bold=$'\033[1m' cyan=$'\033[1;36m' red=$'\033[1;31m' plain=$'\033[0m'
if [ -n "${NO_COLOR:-}" ] || [ ! -t 1 ]; then bold='' cyan='' red='' plain=''; fi
step() { printf '%s[demo]%s %s\n' "$bold" "$plain" "$*"; }
show() { printf '\n%s$ kloud-tui %s%s\n' "$cyan" "$*" "$plain"; }
die() { printf '%s[demo] error:%s %s\n' "$red" "$plain" "$*" >&2; exit 1; }
# json EXPR: evaluates the JS arrow function EXPR on the JSON read from stdin; arrays print space-separated.
json() { node -e 'const f = eval(process.argv[1]); let s = ""; process.stdin.on("data", d => (s += d)).on("end", () => { const r = f(JSON.parse(s)); if (r !== undefined) console.log(Array.isArray(r) ? r.join(" ") : r); });' "$1"; }
tui() { "${TUI[@]}" "$@"; }

# ---- what the demo needs, and exactly what to run when something is missing ----
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed (found: $(node --version 2>/dev/null || echo none)); then run: ./scripts/setup.sh && npm run demo"
declare -A tools=([qemu-system-x86_64]=qemu-system-x86 [qemu-img]=qemu-utils [genisoimage]=genisoimage [apt-get]=apt [dpkg-deb]=dpkg [mcopy]=mtools [syslinux]=syslinux)
missing=()
for tool in "${!tools[@]}"; do command -v "$tool" >/dev/null || missing+=("${tools[$tool]}"); done
if [ ${#missing[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null; then
		die "missing: ${missing[*]} (Debian package names) and there is no apt-get here: install them with your package manager, then run: npm run demo"
	fi
	if [ "$(id -u)" -ne 0 ]; then
		die "missing packages: ${missing[*]}. Run as root: apt-get update && apt-get install -y ${missing[*]}   (or: sudo ./scripts/setup.sh), then: npm run demo"
	fi
	die "missing packages: ${missing[*]}. Run: ./scripts/setup.sh && npm run demo"
fi
[ -d node_modules ] || die 'the npm dependencies are not installed. Run: ./scripts/setup.sh && npm run demo'
if [ ! -f dist/agent/cli.js ] || [ ! -f dist/bin/kloud-tui.js ]; then
	step 'building kloud (npm run build)'
	npm run --silent build
fi

# ---- teardown: runs on every way out (q, Ctrl-C, an error) ----
WORK=''
AMQP=''
users=()
started_broker=false
started_cluster=false
is_cleaned=false
cleanup() {
	local status=$?
	trap '' INT TERM
	set +e
	$is_cleaned && return
	is_cleaned=true
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		printf '\n'
		local ids
		ids=$(tui list --json --timeout 3 2>/dev/null | json 'd => d.vms.map(v => v.id)')
		if [ -n "$ids" ]; then
			step "stopping the demo VMs: $ids"
			local stops=()
			for id in $ids; do
				# Graceful: the guests power themselves off (a guest still booting gets the power button again
				# every 2 s until its acpid runs, on a busy machine that can take a while).
				tui stop "$id" --grace 30 &
				stops+=($!)
			done
			wait "${stops[@]}" 2>/dev/null
		fi
		step "stopping the agents ${HOSTS[*]}"
		local pidfile pid
		for pidfile in "$WORK"/*.pid; do
			[ -f "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null
		done
		for pidfile in "$WORK"/*.pid; do
			[ -f "$pidfile" ] || continue
			pid=$(cat "$pidfile")
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null
		done
		# Any QEMU still running from the demo's state dirs (a stop that failed): only those.
		local proc cmd
		for proc in /proc/[0-9]*; do
			cmd=$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline") || continue
			if [[ $cmd == qemu-system* && $cmd == *"$WORK/"* ]]; then
				step "killing leftover QEMU ${proc#/proc/}"
				kill -KILL "${proc#/proc/}" 2>/dev/null
			fi
		done
		node scripts/demo-broker.mjs clean "$AMQP" "$NS" || step "could not remove the broker's $NS.* exchanges and queue"
		# The demo's VMs go with their state dirs: so do their marks on the image's base copies (each
		# names its agent's state dir), else the copies they used would be kept for good (README, "Base images").
		grep -lsF " $WORK/" "$IMAGES"/.bases/users/*/* 2>/dev/null | xargs -r rm -f
		rm -rf "$WORK"
	fi
	if [ ${#users[@]} -gt 0 ]; then
		step "deleting the broker users ${users[*]}"
		local user deletes=()
		for user in "${users[@]}"; do
			{ ctl -q delete_user "$user" >/dev/null 2>&1 || step "could not delete the broker user $user"; } &
			deletes+=($!)
		done
		wait "${deletes[@]}"
	fi
	if $started_broker; then
		step 'stopping RabbitMQ (the demo started it)'
		rabbitmqctl -q stop >/dev/null 2>&1
	fi
	if $started_cluster; then
		step 'stopping the RabbitMQ cluster (the demo started it)'
		cluster down
	fi
	if [ "$status" -eq 0 ]; then
		step "done: agents, VMs, state, broker topology and users removed (the demo image stays cached in $IMAGES)"
	else
		step "ended with status $status; agents, VMs, state, broker topology and users removed"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the broker, and users of the demo's own ----
command -v rabbitmqctl >/dev/null || die 'RabbitMQ is not installed. Run: ./scripts/setup.sh && npm run demo'
[ "$(id -u)" -eq 0 ] || die 'the demo makes its own broker users with rabbitmqctl (never guest/guest): run it as root (sudo npm run demo)'
if $is_cluster; then
	if ! (exec 3<>"/dev/tcp/${BROKER%:*}/${BROKER#*:}") 2>/dev/null; then
		started_cluster=true
	fi
	step "a 3-node RabbitMQ cluster beside this machine's broker: ${KLOUD_CLUSTER_NAME}1..3@localhost on ${BROKERS[*]} (scripts/cluster.sh up, ≈ 25 s the first time)"
	cluster up || die "the cluster did not start: see $KLOUD_CLUSTER_DIR/n*/log"
elif ! (exec 3<>"/dev/tcp/${BROKER%:*}/${BROKER#*:}") 2>/dev/null; then
	step 'starting RabbitMQ (it will be stopped again at the end)'
	rabbitmq-server -detached >/dev/null 2>&1 || true
	started_broker=true
	rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || die 'RabbitMQ did not start: see /var/log/rabbitmq/'
fi
# guest/guest is every broker's well-known login: the agents (tenants mode refuses it) and the
# walk-through's operator (an admin of the agents) each get a user of their own, NS-KIND-XXXXXX with
# a random password and every right on the vhost. Listed for the teardown before they exist, so they
# never outlive the demo; made side by side (each rabbitmqctl call starts an Erlang VM).
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
AGENT_USER=$NS-agent-$(hex 3) OPS_USER=$NS-ops-$(hex 3)
AGENT_PASSWORD=$(hex 18) OPS_PASSWORD=$(hex 18)
users=("$AGENT_USER" "$OPS_USER")
add_user() { ctl -q add_user "$1" "$2" >/dev/null && ctl -q set_permissions -p / "$1" '.*' '.*' '.*' >/dev/null; }
add_user "$AGENT_USER" "$AGENT_PASSWORD" &
agent_adding=$!
add_user "$OPS_USER" "$OPS_PASSWORD" &
ops_adding=$!
failed=0
wait "$agent_adding" || failed=1
wait "$ops_adding" || failed=1
[ "$failed" -eq 0 ] || die "could not make the broker users ${users[*]}"
AGENT_AMQP=$(amqp_urls "$AGENT_USER" "$AGENT_PASSWORD")
OPS_AMQP=$(amqp_urls "$OPS_USER" "$OPS_PASSWORD")
step "broker users ${users[*]} (the agents, and you: an admin of theirs; deleted at the end)"
AMQP=$OPS_AMQP
export KLOUD_AMQP_URL=$OPS_AMQP
export KLOUD_AGENT_USERS=$AGENT_USER  # heartbeats and VM events count only from the agents' user
node scripts/demo-broker.mjs probe "$AMQP" || die "RabbitMQ runs but does not let the demo's user $OPS_USER in at $BROKER"

# ---- the demo image ----
if [ -n "${KLOUD_DEMO_IMAGE:-}" ]; then
	# A prebuilt image (the tests pass theirs): used as it is, never rebuilt.
	[ -f "$KLOUD_DEMO_IMAGE" ] || die "KLOUD_DEMO_IMAGE=$KLOUD_DEMO_IMAGE is not a file"
	step "the demo image: $KLOUD_DEMO_IMAGE (KLOUD_DEMO_IMAGE, not rebuilt)"
else
	step "the demo image (a Debian kernel and busybox, ≈ 10 MB; built once, cached in $IMAGES)"
	"${AGENT[@]}" image build-demo --out "$IMAGES" 2> >(sed -u 's/^kloud-agent image: /       /' >&2) | sed -u 's/^/       /'
fi

# ---- three hosts ----
# Another kloud in this namespace (another demo?) must be left alone: the teardown would take its VMs.
others=$(tui hosts --json --timeout 1 2>/dev/null | json 'd => d.map(h => h.id)' 2>/dev/null || true)
[ -z "$others" ] || die "hosts $others already run in namespace $NS (another demo?): stop them, or run with KLOUD_NAMESPACE=another-name"

# Short paths: QMP sockets live in the state dirs and unix socket paths stop at 108 bytes.
WORK=$(mktemp -d /tmp/kloud-demo.XXXXXX)
if [ -n "${KLOUD_DEMO_IMAGE:-}" ]; then
	IMAGES=$WORK/images
	mkdir "$IMAGES"
	ln -s "$(realpath "$KLOUD_DEMO_IMAGE")" "$IMAGES/demo.qcow2"
fi
step "starting agents ${HOSTS[*]} in namespace $NS (state and logs in $WORK)"
for host in "${HOSTS[@]}"; do
	# Own session (setsid): Ctrl-C in this terminal must not stop the agents before they stop their VMs.
	# The pid file holds the agent's pid whether or not setsid had to fork.
	# The agents' broker URL (with its password) goes in the environment, not on a command line.
	KLOUD_AMQP_URL=$AGENT_AMQP setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$WORK/$host.pid" \
		"${AGENT[@]}" --host-id "$host" --images "$IMAGES" --state-dir "$WORK/$host" \
		--tenants --admins "$OPS_USER" --network-default user --memory 128 --max-vms 4 --grace 20 --heartbeat 2 \
		</dev/null >"$WORK/$host.log" 2>&1 &
done
for host in "${HOSTS[@]}"; do
	for _ in $(seq 150); do
		grep -q '"agent ready"' "$WORK/$host.log" 2>/dev/null && break
		if [ -f "$WORK/$host.pid" ] && ! kill -0 "$(cat "$WORK/$host.pid")" 2>/dev/null; then
			tail -n 5 "$WORK/$host.log" >&2
			die "agent $host exited (is another demo running in namespace $NS? then set KLOUD_NAMESPACE)"
		fi
		sleep 0.1
	done
	grep -q '"agent ready"' "$WORK/$host.log" || die "agent $host did not get ready in 15 s: see $WORK/$host.log"
done
for _ in $(seq 50); do
	[ "$(tui hosts --json --timeout 2 2>/dev/null | json 'd => d.length')" = "${#HOSTS[@]}" ] && break
	sleep 0.2
done
step "from another terminal: KLOUD_NAMESPACE=$NS KLOUD_AMQP_URL=$OPS_AMQP KLOUD_AGENT_USERS=$AGENT_USER node dist/bin/kloud-tui.js list"

show hosts
tui hosts

# --cluster: the node host-a is on stops (rabbitmqctl stop_app): host-a moves to another node.
if $is_cluster; then
	node_of() { tui hosts --json 2>/dev/null | json "d => (d.find(h => h.id === '$1') || {}).broker || ''"; }
	on=$(node_of host-a)
	index=-1
	for i in 0 1 2; do [ "${BROKERS[$i]}" = "$on" ] && index=$i; done
	[ "$index" -ge 0 ] || die "host-a says it is on broker '$on', not one of ${BROKERS[*]}"
	step "host-a is on ${KLOUD_CLUSTER_NAME}$((index + 1))@localhost ($on): stopping that node (rabbitmqctl stop_app)"
	stopped_at=$SECONDS
	cluster ctl $((index + 1)) -q stop_app >/dev/null
	moved=''
	for _ in $(seq 100); do
		moved=$(node_of host-a)
		[ -n "$moved" ] && [ "$moved" != "$on" ] && break
		sleep 0.2
	done
	[ -n "$moved" ] && [ "$moved" != "$on" ] || die "host-a did not move off $on within 20 s"
	step "host-a moved to $moved within $((SECONDS - stopped_at)) s; starting ${KLOUD_CLUSTER_NAME}$((index + 1))@localhost again"
	cluster ctl $((index + 1)) -q start_app >/dev/null
	show hosts
	tui hosts
fi
show images
tui images

# waits (with a progress line) until VM $1's console shows $2; prints the seconds it took
wait_console() {
	local id=$1 pattern=$2 started=$SECONDS text=''
	while [ $((SECONDS - started)) -lt 150 ]; do
		text=$(tui console "$id" --bytes 16384 2>/dev/null || true)
		if grep -q "$pattern" <<<"$text"; then
			[ -t 1 ] && printf '\r\033[K'
			step "$id: '$pattern' after $((SECONDS - started)) s"
			return 0
		fi
		[ -t 1 ] && printf '\r       waiting for %s to boot (%s s; ≈ 6-10 s under TCG)…' "$id" $((SECONDS - started))
		sleep 1
	done
	printf '\n'
	die "no '$pattern' on $id's console after 150 s"
}

if $is_check; then
	show start --image demo --user-data scripts/demo-user-data.sh --json
	vm=$(tui start --image demo --user-data scripts/demo-user-data.sh --json)
	id=$(json 'd => d.id' <<<"$vm")
	step "started $id on $(json 'd => d.host' <<<"$vm")"
	show list --json
	listed=$(tui list --json --timeout 5)
	printf '%s\n' "$listed"
	answered=$(json 'd => d.hosts.filter(h => h.answered).map(h => h.id).sort()' <<<"$listed")
	[ "$answered" = "${HOSTS[*]}" ] || die "expected ${HOSTS[*]} to answer the list, got: $answered"
	[ "$(json "d => d.vms.filter(v => v.id === '$id' && v.state === 'running').length" <<<"$listed")" = 1 ] || die "$id is not listed as running"
	wait_console "$id" 'KLOUD-READY'
	wait_console "$id" 'KLOUD-USERDATA-DONE'
	show console "$id"
	text=$(tui console "$id")
	printf '%s\n' "$text"
	grep -q "^KLOUD-READY hostname=$id " <<<"$text" || die "the marker does not name $id"
	grep -q "^hello from user-data on $id" <<<"$text" || die "no user-data output on $id's console"
	show stop "$id" --grace 30 --json
	stopped=$(tui stop "$id" --grace 30 --json)
	printf '%s\n' "$stopped"
	[ "$(json 'd => d.exit' <<<"$stopped")" = 'powered off' ] || die "$id was not powered off gracefully"
	step 'check passed: three hosts, a VM booted with user-data, listed, read and powered off'
	exit 0
fi

show start --image demo --host host-a --user-data scripts/demo-user-data.sh
first=$(tui start --image demo --host host-a --user-data scripts/demo-user-data.sh --json | json 'd => d.id')
echo "started $first on host-a"
show start --image demo
step 'no --host: any host with capacity takes it from the shared start queue'
tui start --image demo
show list
tui list
wait_console "$first" 'KLOUD-USERDATA-DONE'
show console "$first"
tui console "$first"

if [ -t 0 ] && [ -t 1 ]; then
	step 'opening kloud-tui: n start, Enter console, x stop, K kill, / filter, ? help, q quit (then the demo cleans up)'
	sleep 3
	tui --refresh 1
else
	step 'not a terminal: no kloud-tui, just the list'
	show list
	tui list
fi
