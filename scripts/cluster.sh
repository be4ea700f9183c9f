#!/usr/bin/env bash
# A RabbitMQ cluster of 3 nodes on this machine, beside its own broker (rabbit@localhost on 5672),
# for tests and the demo: own node names, ports, data dirs, Erlang cookie; no management plugin.
#
#   scripts/cluster.sh up       start the nodes (if not running) and join them; idempotent
#   scripts/cluster.sh down     stop the nodes and remove their dir: no process, dir or epmd name left
#   scripts/cluster.sh status   each node: running or not, and the cluster's members as node 1 sees them
#   scripts/cluster.sh urls     the AMQP URLs, comma-separated (what --amqp and KLOUD_AMQP_URL take)
#
# Settings (environment):
#   KLOUD_CLUSTER_DIR     data, logs, cookie, pids (default /tmp/kloud-cluster)
#   KLOUD_CLUSTER_NAME    node name prefix: nodes are NAME1@localhost … (default kc)
#   KLOUD_CLUSTER_PORT    AMQP port of node 1; node i listens on PORT+i-1, its Erlang
#                         distribution on PORT+20000+i-1 (default 5701)
#   KLOUD_CLUSTER_NODES   how many nodes (default 3)
#   KLOUD_CLUSTER_TLS     a dir holding ca.pem, server.pem, server-key.pem: each node also serves
#                         AMQPS on PORT+10+i-1, and wants a client certificate signed by ca.pem
set -euo pipefail

DIR=${KLOUD_CLUSTER_DIR:-/tmp/kloud-cluster}
NAME=${KLOUD_CLUSTER_NAME:-kc}
PORT=${KLOUD_CLUSTER_PORT:-5701}
COUNT=${KLOUD_CLUSTER_NODES:-3}
TLS=${KLOUD_CLUSTER_TLS:-}
RMQ=/usr/lib/rabbitmq/bin
# The /usr/sbin wrappers switch to the rabbitmq user; the nodes run as whoever runs this script.
SERVER=$RMQ/rabbitmq-server
CTL=$RMQ/rabbitmqctl

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '[cluster] %s\n' "$*" >&2; }

node_name() { printf '%s%s@localhost' "$NAME" "$1"; }
amqp_port() { echo $((PORT + $1 - 1)); }
tls_port() { echo $((PORT + 10 + $1 - 1)); }
dist_port() { echo $((PORT + 20000 + $1 - 1)); }
cookie() { cat "$DIR/cookie"; }
ctl() { local i=$1; shift; HOME=$DIR/n$i "$CTL" -n "$(node_name "$i")" --erlang-cookie "$(cookie)" "$@"; }

# The node's beam process, if it runs (its pid file names it).
node_pid() {
	local file=$DIR/n$1/pid
	[ -s "$file" ] || return 1
	local pid
	pid=$(cat "$file")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# Whether the node's name is registered with epmd (it is, once its distribution is up).
is_registered() { epmd -names 2>/dev/null | grep -q "^name $NAME$1 at port "; }

start_node() {
	local i=$1 d=$DIR/n$1
	mkdir -p "$d/mnesia" "$d/log"
	echo '[].' >"$d/enabled_plugins"
	# Empty env file: the machine's rabbitmq-env.conf sets NODENAME=rabbit@localhost.
	: >"$d/rabbitmq-env.conf"
	{
		echo "listeners.tcp.1 = 127.0.0.1:$(amqp_port "$i")"
		# As the README recommends for production: a node cut off from the majority pauses.
		echo 'cluster_partition_handling = pause_minority'
		# A hung node blocks the others' metadata writes (declaring a queue) until it is deemed down:
		# after ≈ net_ticktime. 60 s by default; 10 s here, so a hung node costs seconds, not a minute.
		echo 'net_ticktime = 10'
		# Nodes 2… join node 1 as they first boot (a node already clustered ignores this): no second
		# boot for a stop_app / join_cluster / start_app, which on a loaded machine was most of `up`.
		if [ "$i" -gt 1 ]; then
			echo 'cluster_formation.peer_discovery_backend = classic_config'
			echo "cluster_formation.classic_config.nodes.1 = $(node_name 1)"
		fi
		if [ -n "$TLS" ]; then
			echo "listeners.ssl.1 = 127.0.0.1:$(tls_port "$i")"
			echo "ssl_options.cacertfile = $TLS/ca.pem"
			echo "ssl_options.certfile = $TLS/server.pem"
			echo "ssl_options.keyfile = $TLS/server-key.pem"
			echo 'ssl_options.verify = verify_peer'
			echo 'ssl_options.fail_if_no_peer_cert = true'
		fi
	} >"$d/rabbitmq.conf"
	# setsid: the node outlives this script and a test runner's process group.
	env -i PATH="$PATH" HOME="$d" LANG=C.UTF-8 \
		RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
		RABBITMQ_NODENAME="$(node_name "$i")" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT="$(amqp_port "$i")" RABBITMQ_DIST_PORT="$(dist_port "$i")" \
		RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PID_FILE="$d/pid" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" ERL_EPMD_ADDRESS=127.0.0.1 \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-setcookie $(cookie) -kernel inet_dist_use_interface {127,0,0,1}" \
		setsid "$SERVER" >"$d/log/stdout.log" 2>&1 </dev/null &
	# setsid did not fork (a background job is no group leader): $! leads the node's process group.
	echo $! >"$d/group"
}

# await_startup fails until the node has registered its name: retry it until the deadline.
await_node() {
	local i=$1 deadline=$((SECONDS + 90))
	until ctl "$i" await_startup --timeout 60 >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			say "node $(node_name "$i") did not start: see $DIR/n$i/log"
			tail -n 20 "$DIR/n$i/log/stdout.log" >&2 || true
			return 1
		fi
		sleep 0.5
	done
}

members() { ctl 1 eval 'rabbit_nodes:all_running().' 2>/dev/null | tr -d '[]\n ' | tr ',' '\n' | sed "s/^'//; s/'$//" | sort; }

cmd_up() {
	local t0=$SECONDS
	mkdir -p "$DIR"
	[ -s "$DIR/cookie" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DIR/cookie")
	local i
	# Node 1 first: the others find it running when they boot, and join it then.
	if ! node_pid 1 >/dev/null; then
		start_node 1
	fi
	await_node 1 || return 1
	for i in $(seq 2 "$COUNT"); do
		if ! node_pid "$i" >/dev/null; then
			start_node "$i"
		fi
	done
	local waits=() failed=0
	for i in $(seq 2 "$COUNT"); do
		await_node "$i" &
		waits+=($!)
	done
	for job in "${waits[@]}"; do wait "$job" || failed=1; done
	[ $failed -eq 0 ] || return 1
	local running
	running=$(members)
	for i in $(seq 2 "$COUNT"); do
		if ! grep -qx "$(node_name "$i")" <<<"$running"; then
			# Their chatter (e.g. a tracked-connection table error while a node starts) goes to a log.
			{
				ctl "$i" stop_app && ctl "$i" join_cluster "$(node_name 1)" && ctl "$i" start_app
			} >>"$DIR/join.log" 2>&1 || { say "node $(node_name "$i") could not join: see $DIR/join.log"; tail -n 20 "$DIR/join.log" >&2; return 1; }
		fi
	done
	say "up: $COUNT nodes joined in $((SECONDS - t0)) s; AMQP $(cmd_urls)"
}

cmd_down() {
	local i groups=()
	[ -d "$DIR" ] || return 0
	for i in $(seq 1 "$COUNT"); do
		local group
		group=$(cat "$DIR/n$i/group" 2>/dev/null) || continue
		# The whole process group this script started: the start script, beam, its port programs.
		kill -TERM -- "-$group" 2>/dev/null && groups+=("$group")
	done
	# A graceful stop takes a few seconds; then no mercy.
	local deadline=$((SECONDS + 15))
	for group in "${groups[@]}"; do
		while kill -0 -- "-$group" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		kill -KILL -- "-$group" 2>/dev/null || true
	done
	for i in $(seq 1 "$COUNT"); do
		local deadline=$((SECONDS + 10))
		while is_registered "$i" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		if is_registered "$i"; then say "epmd still lists $(node_name "$i")"; fi
	done
	rm -rf "$DIR"
	say 'down'
}

cmd_status() {
	local i is_up=0
	for i in $(seq 1 "$COUNT"); do
		if pid=$(node_pid "$i"); then
			printf '%s\tpid %s\tamqp 127.0.0.1:%s%s\n' "$(node_name "$i")" "$pid" "$(amqp_port "$i")" "${TLS:+	amqps 127.0.0.1:$(tls_port "$i")}"
			is_up=1
		else
			printf '%s\tnot running\n' "$(node_name "$i")"
		fi
	done
	if [ $is_up -eq 1 ] && [ -s "$DIR/cookie" ]; then
		printf 'running members (as %s sees them): %s\n' "$(node_name 1)" "$(members | tr '\n' ' ')"
	fi
}

cmd_urls() {
	local i urls=()
	for i in $(seq 1 "$COUNT"); do urls+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$i")"); done
	(IFS=,; echo "${urls[*]}")
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
urls) cmd_urls ;;
ctl) shift; ctl "$@" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
