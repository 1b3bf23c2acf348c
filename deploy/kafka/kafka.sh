#!/usr/bin/env bash
# A real Apache Kafka 4 broker (KRaft) on 127.0.0.1, from Maven Central jars.
# No Docker, no tarball: `jars` resolves the broker with Maven into lib/, and
# the other commands run `java kafka.Kafka` in the background. See
# /work/shared/KAFKA.md for where each step comes from.
#
#   kafka.sh jars                          resolve jars into lib/ (skipped when current)
#   kafka.sh start   [--port 9092] [--watch-pid PID]
#                                          format a fresh log dir, start, wait until ready
#   kafka.sh stop    [--port 9092] [--purge]
#                                          SIGTERM (clean shutdown), then SIGKILL after a grace period;
#                                          --purge also deletes the broker's state dir
#   kafka.sh kill    [--port 9092]         SIGKILL (a crash, for fault tests)
#   kafka.sh restart [--port 9092]         stop if running, start again on the SAME data
#   kafka.sh status  [--port 9092]         exit 0 when running, 3 when not
#   kafka.sh cluster-start [--port 19092] [--watch-pid PID]
#                                          3 brokers; node N (1..3) on port P + 10000*(N-1), so
#                                          19092, 29092, 39092 by default (as in KAFKA.md)
#   kafka.sh cluster-stop [--purge] | cluster-status [--port 19092]
#   kafka.sh node-stop N | node-kill N | node-start N [--port 19092]
#                                          one cluster node; node-start keeps its data
#
# Controller port = broker port + 1. State lives in deploy/kafka/run/ (gitignored):
# run/<port>/ for a single broker, run/cluster-<port>/node<N>/ for cluster nodes, each with
# server.properties, data/, broker.log and kafka.pid. With --watch-pid the broker(s)
# are stopped and purged when that process exits, so a crashed test run leaves nothing behind.
# Environment: JAVA (default java), KAFKA_HEAP (default -Xmx512m -Xms256m),
# KAFKA_START_TIMEOUT seconds (default 120), KAFKA_STOP_TIMEOUT seconds (default 30).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
LIB="$HERE/lib"
RUN="$HERE/run"
JAVA="${JAVA:-java}"
HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
CLUSTER_NODES=(1 2 3)

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*"; }

# --- jars --------------------------------------------------------------------

jars() {
    if [[ -f "$LIB/.resolved" && "$LIB/.resolved" -nt "$HERE/pom.xml" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven) to resolve the Kafka jars"
    say "resolving Apache Kafka jars from Maven Central into $LIB"
    rm -rf "$LIB"
    (cd "$HERE" && mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies \
        -DoutputDirectory=lib -DincludeScope=runtime) || die "Maven could not resolve the Kafka jars (see above)"
    ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar in $LIB after resolving"
    touch "$LIB/.resolved"
}

check_java() {
    command -v "$JAVA" >/dev/null || die "java not found: Kafka 4 needs Java 17 or newer"
    local major
    major="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka 4 needs Java 17 or newer, found: $("$JAVA" -version 2>&1 | head -1)"
}

# --- one broker process ---------------------------------------------------------

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid of the broker whose state dir is $1, or nothing when it is not running.
# The command line must name this dir's server.properties, so a recycled pid is never ours.
live_pid() {
    local dir="$1" pid
    [[ -f "$dir/kafka.pid" ]] || return 0
    pid="$(cat "$dir/kafka.pid")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/server.properties"; then
        echo "$pid"
    fi
}

write_props() {  # dir node_id port ctrl_port voters extra...
    local dir="$1" id="$2" port="$3" ctrl="$4" voters="$5"
    shift 5
    {
        echo "# written by kafka.sh; regenerated on every fresh start"
        echo "process.roles=broker,controller"
        echo "node.id=$id"
        echo "controller.quorum.voters=$voters"
        echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
        echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        echo "inter.broker.listener.name=PLAINTEXT"
        echo "controller.listener.names=CONTROLLER"
        echo "log.dirs=$dir/data"
        echo "group.initial.rebalance.delay.ms=0"
        echo "offsets.topic.num.partitions=2"
        printf '%s\n' "$@"
    } >"$dir/server.properties"
}

format_dir() {  # dir cluster_id
    rm -rf "$1/data"
    "$JAVA" -cp "$LIB/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        kafka.tools.StorageTool format -t "$2" -c "$1/server.properties" >"$1/format.log" 2>&1 \
        || { cat "$1/format.log" >&2; die "formatting $1/data failed"; }
}

ports_free() {
    local p
    for p in "$@"; do
        if port_answers "$p"; then die "port $p on 127.0.0.1 is already in use by another process; choose another --port"; fi
    done
}

launch() {  # dir port ctrl_port
    local dir="$1" port="$2" ctrl="$3"
    ports_free "$port" "$ctrl"
    [[ -f "$dir/broker.log" ]] && mv -f "$dir/broker.log" "$dir/broker.log.1"
    # setsid: the broker gets its own session, so Ctrl-C in the caller's terminal does not reach it.
    # shellcheck disable=SC2086
    setsid bash -c 'echo $$ >"$0/kafka.pid"; exec "$@"' "$dir" \
        "$JAVA" $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        -cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >"$dir/broker.log" 2>&1 &
    local i
    for i in $(seq 50); do [[ -s "$dir/kafka.pid" ]] && break; sleep 0.1; done
}

wait_ready() {  # dir port
    local dir="$1" port="$2" deadline=$((SECONDS + START_TIMEOUT)) pid
    while ((SECONDS < deadline)); do
        pid="$(live_pid "$dir")"
        if [[ -z "$pid" ]]; then
            echo "---- last lines of $dir/broker.log ----" >&2
            tail -n 40 "$dir/broker.log" >&2 || true
            die "the broker on port $port exited during startup (log above)"
        fi
        if grep -q "Kafka Server started" "$dir/broker.log" 2>/dev/null && port_answers "$port"; then
            return 0
        fi
        sleep 0.5
    done
    echo "---- last lines of $dir/broker.log ----" >&2
    tail -n 40 "$dir/broker.log" >&2 || true
    die "the broker on port $port was not ready after ${START_TIMEOUT}s (log above; it is still running: kafka.sh stop --port $port)"
}

stop_dir() {  # dir signal(TERM|KILL)
    local dir="$1" sig="$2" pid deadline
    pid="$(live_pid "$dir")"
    [[ -z "$pid" ]] && { rm -f "$dir/kafka.pid"; return 0; }
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        say "broker pid $pid ignored SIG$sig for ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$dir/kafka.pid"
}

# Stops the broker(s) once the watched process exits (a test run that crashed or was killed).
watch() {  # owner_pid stop-command...
    local owner="$1"
    shift
    kill -0 "$owner" 2>/dev/null || die "--watch-pid $owner: no such process"
    setsid bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 2; done; exec "$@"' "$owner" "$@" \
        </dev/null >/dev/null 2>&1 &
}

# --- single broker ----------------------------------------------------------------

single_dir() { echo "$RUN/$1"; }

start_single() {  # port watch_pid
    local port="$1" dir pid
    dir="$(single_dir "$port")"
    pid="$(live_pid "$dir")"
    if [[ -n "$pid" ]]; then
        say "already running on 127.0.0.1:$port (pid $pid)"
    else
        ports_free "$port" "$((port + 1))"
        jars
        check_java
        mkdir -p "$dir"
        write_props "$dir" 1 "$port" "$((port + 1))" "1@127.0.0.1:$((port + 1))" \
            offsets.topic.replication.factor=1 transaction.state.log.replication.factor=1 \
            transaction.state.log.min.isr=1 share.coordinator.state.topic.replication.factor=1 \
            share.coordinator.state.topic.min.isr=1
        format_dir "$dir" "$("$JAVA" -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
        launch "$dir" "$port" "$((port + 1))"
        wait_ready "$dir" "$port"
        say "started on 127.0.0.1:$port (pid $(live_pid "$dir"), log $dir/broker.log)"
    fi
    [[ -n "${WATCH_PID:-}" ]] && watch "$WATCH_PID" "$SELF" stop --port "$port" --purge
    return 0
}

restart_single() {
    local port="$1" dir
    dir="$(single_dir "$port")"
    [[ -f "$dir/server.properties" && -d "$dir/data" ]] || die "nothing to restart on port $port: use start"
    stop_dir "$dir" TERM
    launch "$dir" "$port" "$((port + 1))"
    wait_ready "$dir" "$port"
    say "restarted on 127.0.0.1:$port (pid $(live_pid "$dir"))"
}

status_dir() {  # dir label
    local pid
    pid="$(live_pid "$1")"
    if [[ -n "$pid" ]]; then say "$2: running (pid $pid)"; return 0; fi
    say "$2: stopped"
    return 3
}

# --- three brokers on one host ---------------------------------------------------------

# Cluster node N's state dir and broker port, for the cluster whose node 1 is on $PORT.
node_dir() { echo "$RUN/cluster-$PORT/node$1"; }
node_port() { echo $((PORT + 10000 * ($1 - 1))); }
check_node() { [[ "$1" =~ ^[123]$ ]] || die "cluster nodes are 1, 2 and 3, got '$1'"; }

cluster_start() {
    local n voters="" cid dir running=0 port
    ((PORT + 20001 < 65536)) || die "cluster --port must be below 45535 (node 3 uses port + 20000)"
    for n in "${CLUSTER_NODES[@]}"; do
        [[ -n "$(live_pid "$(node_dir "$n")")" ]] && running=$((running + 1))
    done
    if ((running == ${#CLUSTER_NODES[@]})); then
        say "cluster already running"
    elif ((running > 0)); then
        for n in "${CLUSTER_NODES[@]}"; do node_start "$n"; done
    else
        jars
        check_java
        for n in "${CLUSTER_NODES[@]}"; do voters+="${voters:+,}$n@127.0.0.1:$(($(node_port "$n") + 1))"; done
        cid="$("$JAVA" -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
        for n in "${CLUSTER_NODES[@]}"; do
            dir="$(node_dir "$n")" port="$(node_port "$n")"
            mkdir -p "$dir"
            write_props "$dir" "$n" "$port" "$((port + 1))" "$voters" \
                default.replication.factor=3 min.insync.replicas=2 \
                offsets.topic.replication.factor=3 transaction.state.log.replication.factor=3 \
                transaction.state.log.min.isr=2 share.coordinator.state.topic.replication.factor=3 \
                share.coordinator.state.topic.min.isr=2
            format_dir "$dir" "$cid"
        done
        for n in "${CLUSTER_NODES[@]}"; do port="$(node_port "$n")"; launch "$(node_dir "$n")" "$port" "$((port + 1))"; done
        for n in "${CLUSTER_NODES[@]}"; do wait_ready "$(node_dir "$n")" "$(node_port "$n")"; done
        say "cluster started: bootstrap $(cluster_bootstrap)"
    fi
    [[ -n "${WATCH_PID:-}" ]] && watch "$WATCH_PID" "$SELF" cluster-stop --port "$PORT" --purge
    return 0
}

cluster_bootstrap() {
    local n out=""
    for n in "${CLUSTER_NODES[@]}"; do out+="${out:+,}127.0.0.1:$(node_port "$n")"; done
    echo "$out"
}

cluster_stop() {
    local n
    for n in "${CLUSTER_NODES[@]}"; do stop_dir "$(node_dir "$n")" TERM & done
    wait
    ((PURGE)) && rm -rf "$RUN/cluster-$PORT"
    say "cluster stopped"
}

cluster_status() {
    local n rc=0
    for n in "${CLUSTER_NODES[@]}"; do status_dir "$(node_dir "$n")" "node $n (127.0.0.1:$(node_port "$n"))" || rc=3; done
    return "$rc"
}

node_start() {
    local dir
    dir="$(node_dir "$1")"
    [[ -f "$dir/server.properties" && -d "$dir/data" ]] || die "node $1 was never formatted: run cluster-start"
    if [[ -n "$(live_pid "$dir")" ]]; then say "node $1 already running"; return 0; fi
    launch "$dir" "$(node_port "$1")" "$(($(node_port "$1") + 1))"
    wait_ready "$dir" "$(node_port "$1")"
    say "node $1 started (pid $(live_pid "$dir"))"
}

# --- command line -------------------------------------------------------------

cmd="${1:-}"
[[ -n "$cmd" ]] && shift
PORT=""
WATCH_PID=""
NODE=""
PURGE=0
while (($#)); do
    case "$1" in
        --port) PORT="${2:?--port needs a number}"; shift 2 ;;
        --watch-pid) WATCH_PID="${2:?--watch-pid needs a pid}"; shift 2 ;;
        --purge) PURGE=1; shift ;;
        [0-9]*) NODE="$1"; shift ;;
        *) die "unknown argument '$1' (see the header of $SELF)" ;;
    esac
done
case "$cmd" in cluster-* | node-*) PORT="${PORT:-19092}" ;; *) PORT="${PORT:-9092}" ;; esac
[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65535)) || die "--port must be a port number, got '$PORT'"

case "$cmd" in
    jars) jars ;;
    start) start_single "$PORT" ;;
    stop)
        stop_dir "$(single_dir "$PORT")" TERM
        ((PURGE)) && rm -rf "$(single_dir "$PORT")"
        say "stopped (port $PORT)" ;;
    kill) stop_dir "$(single_dir "$PORT")" KILL; say "killed (port $PORT)" ;;
    restart) restart_single "$PORT" ;;
    status) status_dir "$(single_dir "$PORT")" "broker on 127.0.0.1:$PORT" ;;
    cluster-start) cluster_start ;;
    cluster-stop) cluster_stop ;;
    cluster-status) cluster_status ;;
    node-stop) check_node "$NODE"; stop_dir "$(node_dir "$NODE")" TERM; say "node $NODE stopped" ;;
    node-kill) check_node "$NODE"; stop_dir "$(node_dir "$NODE")" KILL; say "node $NODE killed" ;;
    node-start) check_node "$NODE"; node_start "$NODE" ;;
    *) die "usage: kafka.sh jars|start|stop|kill|restart|status|cluster-start|cluster-stop|cluster-status|node-stop N|node-kill N|node-start N [--port P] [--watch-pid PID]" ;;
esac
