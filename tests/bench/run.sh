#!/usr/bin/env bash
# Side-by-side benchmark for issues 6 (balancer vs HAProxy) and 7 (broker vs
# Mosquitto / rumqttd), in ONE run. Every server (brokers, balancers) is pinned
# to CPU 0, the load generator (`skerry bench`, `openssl s_time`) to CPU 1.
# All servers listen on free 127.0.0.1 ports picked at start.
#
# Usage: tests/bench/run.sh            (needs target/release/skerry built)
# Env:   SKERRY=path RUMQTTD=path DUR=8s OUT=dir BG_MAX=25 (background CPU %
#        above which a figure is re-measured once) P99_SECS=24 (window of the
#        latency rows: one 8 s window's p99 rests on 320 messages and moves
#        by +-100 us between windows on its own) ONLY=i6|i7|i6p99 (one
#        issue's rows, or issue 6's latency rows alone) I6_ROUNDS=3 (interleaved rounds of issue 6's fan-in rows; the
#        summary gives each target's median: one 8 s fan-in on this machine
#        kind moves by +-20% between runs on its own) I6_P99_ROUNDS=1
#        (interleaved rounds of issue 6's latency rows, medians likewise)
# Output: $OUT/results.jsonl (one JSON object per row, with the exact command,
#         load average and background CPU), $OUT/summary.md, logs per server.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SKERRY=${SKERRY:-$ROOT/target/release/skerry}
RUMQTTD=${RUMQTTD:-$(command -v rumqttd || echo "$HOME/.cargo/bin/rumqttd")}
DUR=${DUR:-8s}
P99_SECS=${P99_SECS:-24}
ONLY=${ONLY:-}
I6_ROUNDS=${I6_ROUNDS:-3}
I6_P99_ROUNDS=${I6_P99_ROUNDS:-1}
BG_MAX=${BG_MAX:-25}
OUT=${OUT:-$HERE/out/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RES=$OUT/results.jsonl
: > "$RES"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%T)] $*" >&2; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "port $1 never opened"; return 1
}
# start NAME CMD...: runs CMD pinned to CPU 0, sets LASTPID.
start() {
  local name=$1; shift
  taskset -c 0 "$@" > "$OUT/$name.log" 2>&1 &
  LASTPID=$!
  PIDS+=("$LASTPID")
  echo "$name $LASTPID $*" >> "$OUT/servers.txt"
}
# Busy % of all CPUs over 1 s while nothing of ours runs = other people's load.
bgcpu() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local ta=0 tb=0 i
  for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) )) tot=$((tb - ta))
  echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
# quiet: wait (up to 30 s) until background CPU <= BG_MAX; echoes last value.
quiet() {
  local bg
  for _ in 1 2 3 4 5 6; do
    bg=$(bgcpu)
    [ "$bg" -le "$BG_MAX" ] && break
    sleep 4
  done
  echo "$bg"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# bench ID TARGET_LABEL BENCH-ARGS...: one `skerry bench` row (re-run once if
# background CPU was high before or after it).
bench() {
  local id=$1 target=$2; shift 2
  local cmd=(taskset -c 1 "$SKERRY" bench "$@" --json -q)
  local attempt bg bg2 load
  for attempt in 1 2; do
    bg=$(quiet); load=$(loadavg)
    log "$id ($target) load=$load bg=$bg%: ${cmd[*]}"
    "${cmd[@]}" > "$OUT/$id.json" 2> "$OUT/$id.err"
    bg2=$(bgcpu)
    if [ "$attempt" = 1 ] && { [ "$bg" -gt "$BG_MAX" ] || [ "$bg2" -gt "$BG_MAX" ]; }; then
      log "  background CPU high ($bg% / $bg2%): measuring again"; continue
    fi
    break
  done
  # An empty file is valid to jq (no output, exit 0): a crashed run leaves one.
  if [ -s "$OUT/$id.json" ] && jq -e . "$OUT/$id.json" >/dev/null 2>&1; then
    jq -c --arg id "$id" --arg target "$target" --arg load "$load" --arg bg "$bg/$bg2" \
      --arg cmd "${cmd[*]}" '{id:$id,target:$target,load:$load,bg_cpu:$bg,cmd:$cmd}+.' "$OUT/$id.json" >> "$RES"
  else
    jq -nc --arg id "$id" --arg target "$target" --arg load "$load" --arg cmd "${cmd[*]}" \
      --arg err "$(tail -c 400 "$OUT/$id.err")" '{id:$id,target:$target,load:$load,cmd:$cmd,error:$err}' >> "$RES"
  fi
}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# rss ID TARGET_LABEL PID PORT: 10k idle connections, broker RSS before/during.
rss() {
  local id=$1 target=$2 pid=$3 port=$4
  local cmd=(taskset -c 1 "$SKERRY" bench conn --clients 10000 --duration 10s --port "$port" --json -q)
  local bg load before peak=0 r
  bg=$(quiet); load=$(loadavg)
  before=$(rss_kb "$pid")
  log "$id ($target) load=$load bg=$bg% rss_before=${before}kB: ${cmd[*]}"
  "${cmd[@]}" > "$OUT/$id.json" 2> "$OUT/$id.err" &
  local bpid=$!
  while kill -0 "$bpid" 2>/dev/null; do
    r=$(rss_kb "$pid"); [ "${r:-0}" -gt "$peak" ] && peak=$r
    sleep 0.5
  done
  wait "$bpid"
  local after; sleep 1; after=$(rss_kb "$pid")
  [ -s "$OUT/$id.json" ] && jq -c --arg id "$id" --arg target "$target" --arg load "$load" --arg bg "$bg" --arg cmd "${cmd[*]}" \
    --argjson before "$before" --argjson peak "$peak" --argjson after "$after" \
    '{id:$id,target:$target,load:$load,bg_cpu:$bg,cmd:$cmd,rss_before_kb:$before,rss_peak_kb:$peak,rss_after_kb:$after,
      bytes_per_conn:((($peak-$before)*1024)/(if .connections>0 then .connections else 1 end)|floor)}+.' \
    "$OUT/$id.json" >> "$RES" 2>/dev/null ||
    jq -nc --arg id "$id" --arg err "$(tail -c 400 "$OUT/$id.err")" '{id:$id,error:$err}' >> "$RES"
}

# handshakes ID TARGET_LABEL PORT: mTLS full handshakes/s with openssl s_time.
handshakes() {
  local id=$1 target=$2 port=$3
  local cmd=(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" -new -cert "$CA/dev.crt" -key "$CA/dev.key" -CAfile "$CA/ca.crt" -time 10)
  local bg load
  bg=$(quiet); load=$(loadavg)
  log "$id ($target) load=$load bg=$bg%: ${cmd[*]}"
  "${cmd[@]}" > "$OUT/$id.txt" 2>&1
  local line n secs
  line=$(grep -m1 'connections in .* real seconds' "$OUT/$id.txt")
  n=$(echo "$line" | awk '{print $1}'); secs=$(echo "$line" | sed -E 's/.* in ([0-9.]+) real seconds.*/\1/')
  local conns_per_user; conns_per_user=$(grep -m1 'connections/user sec' "$OUT/$id.txt" | sed -E 's/.*; ([0-9.]+) connections\/user sec.*/\1/')
  jq -nc --arg id "$id" --arg target "$target" --arg load "$load" --arg bg "$bg" --arg cmd "${cmd[*]}" \
    --arg n "${n:-0}" --arg secs "${secs:-0}" --arg raw "$line" --arg cpu "${conns_per_user:-}" \
    '{id:$id,target:$target,load:$load,bg_cpu:$bg,cmd:$cmd,handshakes:($n|tonumber),real_s:($secs|tonumber),
      handshakes_per_sec:(if ($secs|tonumber)>0 then (($n|tonumber)/($secs|tonumber)*10|round/10) else 0 end),raw:$raw}' >> "$RES"
}

[ -x "$SKERRY" ] || { log "no $SKERRY: cargo build --release -p skerry"; exit 1; }
HAVE_RUMQTTD=1; [ -x "$RUMQTTD" ] || { log "rumqttd not found: its rows are skipped"; HAVE_RUMQTTD=0; }

# ---------------------------------------------------------------- ports
P_SK=$(freeport)        # issue 7: Skerry node, one TCP listener
P_MQ=$(freeport)        # Mosquitto (issue 7 peer, issue 6 backend without PROXY)
P_RQ=$(freeport)        # rumqttd v4 listener
P_RQ5=$(freeport); P_RQC=$(freeport)  # rumqttd v5 / console (required by its config)
P_SL_DIRECT=$(freeport); P_SL_PROXY=$(freeport); P_SL_LB=$(freeport)  # issue 7: node+lb in one `skerry run`
P_N6_DIRECT=$(freeport); P_N6_PROXY=$(freeport)                      # issue 6 backend node
P_LB_NODE=$(freeport); P_LB_MQ=$(freeport); P_LB_TLS=$(freeport)     # `skerry lb`
P_HA_NODE=$(freeport); P_HA_MQ=$(freeport); P_HA_TLS=$(freeport)     # haproxy
P_LBB_NODE=$(freeport); P_LBB_MQ=$(freeport); P_LBB_TLS=$(freeport)  # `skerry lb`, scheduling: batch
P_HAB_NODE=$(freeport); P_HAB_MQ=$(freeport); P_HAB_TLS=$(freeport)  # haproxy under chrt --batch
P_LBP_NODE=$(freeport)                                               # `skerry lb` passing sockets to the node

# ---------------------------------------------------------------- certificates
CA=$OUT/ca
"$SKERRY" ca init --dir "$CA" --cn "Bench CA" > "$OUT/ca.log" 2>&1
"$SKERRY" ca issue server --dir "$CA" --key-type ecdsa-p256 --cn localhost --dns localhost --ip 127.0.0.1 --out "$CA/server" >> "$OUT/ca.log" 2>&1
"$SKERRY" ca issue client --dir "$CA" --cn dev-1 --key-type ecdsa-p256 --out "$CA/dev" >> "$OUT/ca.log" 2>&1
cat "$CA/server.crt" "$CA/server.key" > "$CA/server.pem"

# ---------------------------------------------------------------- configs
# Skerry keeps its default max_online_messages (1000): a QoS 1/2 publisher
# whose subscriber's mailbox is full waits for room (backpressure), so the
# queue stays bounded and nothing is dropped. A 1,000,000 queue would only
# let it acknowledge far ahead of delivery.
SESS='  allow_anonymous: true
  sessions:
    max_inflight_messages: 100
  store:
    engine: memory'

cat > "$OUT/skerry-node.yaml" <<EOF
# Issue 7: a Skerry node alone, one TCP listener.
broker:
$SESS
  nodes:
    - name: bench
      data_dir: $OUT/data/node7
      listeners:
        - name: tcp
          bind: 127.0.0.1:$P_SK
EOF

cat > "$OUT/skerry-node-lb.yaml" <<EOF
# Issue 7 "through the LB": one \`skerry run\` with a node and the balancer in
# front of it (PROXY v2), plus a direct listener on the same node. The node
# is in the balancer's process: clients are handed over to it, not relayed.
broker:
$SESS
  nodes:
    - name: bench
      data_dir: $OUT/data/node7lb
      listeners:
        - name: direct
          bind: 127.0.0.1:$P_SL_DIRECT
        - name: from-lb
          bind: 127.0.0.1:$P_SL_PROXY
          proxy_protocol:
            trusted: [127.0.0.1/32]
lb:
  listeners:
    - name: mqtt
      bind: 127.0.0.1:$P_SL_LB
      pool: nodes
  pools:
    - name: nodes
      balance: client_id
      proxy_protocol: v2
      members:
        - name: bench
          address: 127.0.0.1:$P_SL_PROXY
EOF

cat > "$OUT/skerry-node6.yaml" <<EOF
# Issue 6 backend: a Skerry node with a direct listener and one that takes
# PROXY v2 from the balancers, and clients' sockets passed by \`skerry lb\`
# on its handover socket.
broker:
$SESS
  nodes:
    - name: backend
      data_dir: $OUT/data/node6
      listeners:
        - name: direct
          bind: 127.0.0.1:$P_N6_DIRECT
        - name: from-lb
          bind: 127.0.0.1:$P_N6_PROXY
          proxy_protocol:
            trusted: [127.0.0.1/32]
            use_cn_as_username: true
          handover_socket: $OUT/node6.sock
EOF

# node_pool NAME PROXY [LINE]: a pool of the issue 6 node with client-id
# stickiness, LINE (indented) added to its member.
node_pool() {
  printf '    - name: %s\n      balance: client_id\n      proxy_protocol: %s\n' "$1" "$2"
  printf '      members:\n        - name: backend\n          address: 127.0.0.1:%s\n' "$P_N6_PROXY"
  if [ -n "${3:-}" ]; then printf '          %s\n' "$3"; fi
}

cat > "$OUT/skerry-lb.yaml" <<EOF
# Issue 6: \`skerry lb\` alone, client-id stickiness, in front of the Skerry
# node (PROXY v2) and of Mosquitto (no PROXY: Mosquitto 2.0 has none).
lb:
  listeners:
    - name: to-node
      bind: 127.0.0.1:$P_LB_NODE
      pool: node
    - name: to-mosquitto
      bind: 127.0.0.1:$P_LB_MQ
      pool: mosquitto
    - name: mtls
      bind: 127.0.0.1:$P_LB_TLS
      pool: node-tls
      tls:
        cert: $CA/server.crt
        key: $CA/server.key
        client_ca: $CA/ca.crt
        require_certificate: true
  pools:
$(node_pool node v2)
$(node_pool node-tls v2_ssl_cn)
    - name: mosquitto
      balance: client_id
      proxy_protocol: none
      members:
        - name: mosquitto
          address: 127.0.0.1:$P_MQ
EOF

cat > "$OUT/haproxy.cfg" <<EOF
# Issue 6: HAProxy with the same client-id stickiness (mqtt_field_value).
global
    maxconn 9000
    log stderr format short local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend to-node
    bind 127.0.0.1:$P_HA_NODE
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.payload(0,0),mqtt_is_valid }
    default_backend node
frontend to-mosquitto
    bind 127.0.0.1:$P_HA_MQ
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.payload(0,0),mqtt_is_valid }
    default_backend mosquitto
frontend mtls
    bind 127.0.0.1:$P_HA_TLS ssl crt $CA/server.pem ca-file $CA/ca.crt verify required
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.payload(0,0),mqtt_is_valid }
    default_backend node-tls
backend node
    stick-table type string len 128 size 1m expire 1h
    stick on req.payload(0,0),mqtt_field_value(connect,client_identifier)
    server backend 127.0.0.1:$P_N6_PROXY send-proxy-v2
backend node-tls
    stick-table type string len 128 size 1m expire 1h
    stick on req.payload(0,0),mqtt_field_value(connect,client_identifier)
    server backend 127.0.0.1:$P_N6_PROXY send-proxy-v2-ssl-cn
backend mosquitto
    stick-table type string len 128 size 1m expire 1h
    stick on req.payload(0,0),mqtt_field_value(connect,client_identifier)
    server mosquitto 127.0.0.1:$P_MQ
EOF

# The same two balancers again on ports of their own, \`skerry lb\` with
# \`scheduling: batch\` (its threads under SCHED_BATCH: a relay woken by the
# broker's write waits until the broker yields the shared core, then relays
# all that came meanwhile) and HAProxy under \`chrt --batch 0\`, its fair peer.
batch_ports() { sed -E -e "s/:$1( |\$)/:$4\1/" -e "s/:$2( |\$)/:$5\1/" -e "s/:$3( |\$)/:$6\1/"; }
sed -e 's/^lb:$/lb:\n  scheduling: batch/' "$OUT/skerry-lb.yaml" |
  batch_ports "$P_LB_NODE" "$P_LB_MQ" "$P_LB_TLS" "$P_LBB_NODE" "$P_LBB_MQ" "$P_LBB_TLS" > "$OUT/skerry-lb-batch.yaml"
batch_ports "$P_HA_NODE" "$P_HA_MQ" "$P_HA_TLS" "$P_HAB_NODE" "$P_HAB_MQ" "$P_HAB_TLS" < "$OUT/haproxy.cfg" > "$OUT/haproxy-batch.cfg"

# \`skerry lb\` in front of the same node listener, passing plain clients'
# sockets to the node over its handover socket instead of relaying them
# (the node on this host, in a process of its own). Health checks, PROXY
# v2 and stickiness as in the relaying balancer.
cat > "$OUT/skerry-lb-pass.yaml" <<EOF
lb:
  listeners:
    - name: to-node
      bind: 127.0.0.1:$P_LBP_NODE
      pool: node
  pools:
$(node_pool node v2 "handover_socket: $OUT/node6.sock")
EOF

cat > "$OUT/mosquitto.conf" <<EOF
# Mosquitto 2.0 with the fair settings (its defaults drop under load).
listener $P_MQ 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 100
max_queued_messages 1000000
log_dest stderr
connection_messages false
EOF

sed -e "s/@V4@/$P_RQ/" -e "s/@V5@/$P_RQ5/" -e "s/@CONSOLE@/$P_RQC/" "$HERE/rumqttd.toml" > "$OUT/rumqttd.toml"

# ---------------------------------------------------------------- servers
start skerry-node   "$SKERRY" run -c "$OUT/skerry-node.yaml";    PID_SK=$LASTPID
start mosquitto     mosquitto -c "$OUT/mosquitto.conf";          PID_MQ=$LASTPID
if [ "$HAVE_RUMQTTD" = 1 ]; then
  start rumqttd     "$RUMQTTD" -c "$OUT/rumqttd.toml";           PID_RQ=$LASTPID
fi
start skerry-node-lb "$SKERRY" run -c "$OUT/skerry-node-lb.yaml"; PID_SL=$LASTPID
start skerry-node6  "$SKERRY" run -c "$OUT/skerry-node6.yaml";   PID_N6=$LASTPID
wait_port "$P_N6_PROXY"; wait_port "$P_MQ"
start skerry-lb     "$SKERRY" lb -c "$OUT/skerry-lb.yaml";       PID_LB=$LASTPID
start haproxy       haproxy -db -f "$OUT/haproxy.cfg";           PID_HA=$LASTPID
start skerry-lb-batch "$SKERRY" lb -c "$OUT/skerry-lb-batch.yaml"
start haproxy-batch chrt --batch 0 haproxy -db -f "$OUT/haproxy-batch.cfg"
start skerry-lb-pass "$SKERRY" lb -c "$OUT/skerry-lb-pass.yaml"
for p in $P_SK $P_MQ $P_SL_DIRECT $P_SL_LB $P_N6_DIRECT $P_LB_NODE $P_LB_MQ $P_LB_TLS $P_HA_NODE $P_HA_MQ $P_HA_TLS \
         $P_LBB_NODE $P_LBB_MQ $P_LBB_TLS $P_HAB_NODE $P_HAB_MQ $P_HAB_TLS $P_LBP_NODE; do
  wait_port "$p" || exit 1
done
[ "$HAVE_RUMQTTD" = 1 ] && { wait_port "$P_RQ" || HAVE_RUMQTTD=0; }
sleep 2   # health checks settle
{ echo "versions:"; "$SKERRY" --version; mosquitto -h 2>&1 | head -1; haproxy -v | head -1;
  [ "$HAVE_RUMQTTD" = 1 ] && "$RUMQTTD" --version 2>&1 | head -1; openssl version; uname -r; nproc; } > "$OUT/versions.txt" 2>&1

BROKERS=("skerry $P_SK"); BROKERS+=("mosquitto $P_MQ")
[ "$HAVE_RUMQTTD" = 1 ] && BROKERS+=("rumqttd $P_RQ")

# ================================================================ both issues
log "=== latency floor: a bare TCP round trip between CPU 0 and CPU 1 (tests/bench/pingpong.c)"
if command -v cc >/dev/null && cc -O2 -o "$OUT/pingpong" "$HERE/pingpong.c"; then
  P_PP=$(freeport)
  taskset -c 0 "$OUT/pingpong" server "$P_PP" & PIDS+=("$!"); sleep 0.3
  cmd=(taskset -c 1 "$OUT/pingpong" client "$P_PP" $((4000 * P99_SECS)))
  bg=$(quiet); load=$(loadavg)
  "${cmd[@]}" | jq -c --arg load "$load" --arg bg "$bg" --arg cmd "${cmd[*]}" \
    '{id:"floor-tcp-rtt",target:"c-echo",load:$load,bg_cpu:$bg,cmd:$cmd}+.' >> "$RES"
else
  log "no C compiler: the floor row is skipped"
fi

# ================================================================ issue 7
if [ "$ONLY" != i6 ] && [ "$ONLY" != i6p99 ]; then
log "=== issue 7: RSS per idle connection (fresh brokers, before any traffic)"
rss i7-rss-skerry skerry "$PID_SK" "$P_SK"
rss i7-rss-mosquitto mosquitto "$PID_MQ" "$P_MQ"
[ "$HAVE_RUMQTTD" = 1 ] && rss i7-rss-rumqttd rumqttd "$PID_RQ" "$P_RQ"
rss i7-rss-skerry-via-lb skerry-run-lb "$PID_SL" "$P_SL_LB"

log "=== issue 7: throughput and latency (scenario outer loop, brokers interleaved)"
for b in "${BROKERS[@]}"; do set -- $b
  bench "i7-fanin-q0-$1" "$1" fanin --publishers 8 --qos 0 --duration "$DUR" --port "$2"; done
for b in "${BROKERS[@]}"; do set -- $b
  bench "i7-fanin-q1-$1" "$1" fanin --publishers 8 --qos 1 --duration "$DUR" --port "$2"; done
for b in "${BROKERS[@]}"; do set -- $b
  bench "i7-shared-q1-$1" "$1" shared --publishers 8 --subscribers 4 --qos 1 --duration "$DUR" --port "$2"; done
for b in "${BROKERS[@]}"; do set -- $b
  bench "i7-fanout-q0-$1" "$1" fanout --subscribers 16 --qos 0 --duration "$DUR" --port "$2"; done

for b in "${BROKERS[@]}"; do set -- $b
  bench "i7-p99-4k-$1" "$1" fanin --publishers 8 --qos 1 --rate 4000 --duration "${P99_SECS}s" --port "$2"; done

log "=== issue 7: through the in-process balancer vs direct (same skerry run)"
bench i7-lb-direct skerry-node-direct fanin --publishers 8 --qos 1 --duration "$DUR" --port "$P_SL_DIRECT"
bench i7-lb-via    skerry-run-lb      fanin --publishers 8 --qos 1 --duration "$DUR" --port "$P_SL_LB"
bench i7-lb-p99-direct skerry-node-direct fanin --publishers 8 --qos 1 --rate 4000 --duration "${P99_SECS}s" --port "$P_SL_DIRECT"
bench i7-lb-p99-via    skerry-run-lb      fanin --publishers 8 --qos 1 --rate 4000 --duration "${P99_SECS}s" --port "$P_SL_LB"
fi

# ================================================================ issue 6
if [ "$ONLY" != i7 ]; then
I6_NODE=("node-direct $P_N6_DIRECT" "skerry-lb-to-node $P_LB_NODE" "haproxy-to-node $P_HA_NODE"
         "skerry-lb-batch-to-node $P_LBB_NODE" "haproxy-batch-to-node $P_HAB_NODE" "skerry-lb-pass-to-node $P_LBP_NODE")
I6_MQ=("mosquitto-direct $P_MQ" "skerry-lb-to-mosq $P_LB_MQ" "haproxy-to-mosq $P_HA_MQ"
       "skerry-lb-batch-to-mosq $P_LBB_MQ" "haproxy-batch-to-mosq $P_HAB_MQ")
if [ "$ONLY" != i6p99 ]; then
log "=== issue 6: fan-in QoS 1 through the balancers vs direct, $I6_ROUNDS interleaved rounds"
for r in $(seq "$I6_ROUNDS"); do
  for t in "${I6_NODE[@]}" "${I6_MQ[@]}"; do set -- $t
    bench "i6-fanin-$1-r$r" "$1" fanin --publishers 8 --qos 1 --duration "$DUR" --port "$2"; done
done
fi

log "=== issue 6: p99 at a fixed 4k msg/s QoS 1, $I6_P99_ROUNDS interleaved rounds"
for r in $(seq "$I6_P99_ROUNDS"); do
  for t in "${I6_NODE[@]}" "${I6_MQ[@]}"; do set -- $t
    bench "i6-p99-$1-r$r" "$1" fanin --publishers 8 --qos 1 --rate 4000 --duration "${P99_SECS}s" --port "$2"; done
done

if [ "$ONLY" != i6p99 ]; then
log "=== issue 6: mTLS full handshakes/s (P-256 client cert from the bundled CA)"
handshakes i6-tls-skerry  skerry-lb "$P_LB_TLS"
handshakes i6-tls-haproxy haproxy   "$P_HA_TLS"

log "=== issue 6: mTLS MQTT connects/s, many clients at once (full handshakes, CONNECT to CONNACK through to the node)"
TLS_ARGS=(--cafile "$CA/ca.crt" --cert "$CA/dev.crt" --key "$CA/dev.key" --tls-server-name localhost)
bench i6-tls-conn-skerry  skerry-lb conn --clients 4000 --duration 1s --port "$P_LB_TLS" "${TLS_ARGS[@]}"
bench i6-tls-conn-haproxy haproxy   conn --clients 4000 --duration 1s --port "$P_HA_TLS" "${TLS_ARGS[@]}"
fi
fi

# ---------------------------------------------------------------- summary
{
  echo "| id | target | msgs/s sent | msgs/s recv | lost | dup | conn err | disc | p50 µs | p99 µs | other | load avg | bg cpu % |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  jq -r 'def us: if . == null then "-" else (. * 1000 | round | tostring) end;
    if .error then "| \(.id) | \(.target // "-") | ERROR: \(.error|gsub("\n";" ")) |||||||||||"
    elif .rtt_us then "| \(.id) | \(.target) | - | - | - | - | - | - | \(.rtt_us.p50) | \(.rtt_us.p99) | round trip, p999 \(.rtt_us.p999) µs | \(.load) | \(.bg_cpu) |"
    elif .handshakes_per_sec then "| \(.id) | \(.target) | - | - | - | - | - | - | - | - | \(.handshakes_per_sec) handshakes/s | \(.load) | \(.bg_cpu) |"
    elif .scenario == "conn" and .rss_peak_kb == null then "| \(.id) | \(.target) | - | - | - | - | \(.connect_errors) | \(.disconnects) | \(.latency_ms.p50|us) | \(.latency_ms.p99|us) | \(.connections) conns, \(.connect_per_sec) connects/s | \(.load) | \(.bg_cpu) |"
    elif .scenario == "conn" then "| \(.id) | \(.target) | - | - | - | - | \(.connect_errors) | \(.disconnects) | - | - | \(.connections) conns, RSS \(.rss_before_kb)->\(.rss_peak_kb) kB, \(.bytes_per_conn) B/conn | \(.load) | \(.bg_cpu) |"
    else "| \(.id) | \(.target) | \(.sent_per_sec) | \(.received_per_sec) | \(.lost) | \(.duplicates) | \(.connect_errors) | \(.disconnects) | \(.latency_ms.p50|us) | \(.latency_ms.p99|us) | - | \(.load) | \(.bg_cpu) |" end' "$RES"
  echo
  echo "Issue 6 fan-in QoS 1, median over the rounds (msgs/s received; cost against the same backend direct):"
  jq -rs '[.[] | select(.id | test("^i6-fanin-.*-r[0-9]+$")) | select(.received_per_sec != null)]
    | group_by(.target) | map({target: .[0].target, rounds: map(.received_per_sec | round),
        lost: (map(.lost) | add), median: (map(.received_per_sec) | sort | .[(length - 1) / 2 | floor])})
    | (map(select(.target | endswith("direct"))) | map({key: (.target | sub("-direct$"; "")), value: .median}) | from_entries) as $direct
    | .[] | (if (.target | test("node$")) then $direct["node"] elif (.target | test("mosq$")) then $direct["mosquitto"] else null end) as $d
    | "- \(.target): median \(.median | round) (rounds \(.rounds | map(tostring) | join(", ")), lost \(.lost))"
      + (if $d then ", cost \(((1 - .median / $d) * 1000 | round) / 10)%" else "" end)' "$RES"
  echo
  echo "Issue 6 p99 at 4k msg/s QoS 1, median over the rounds (µs; added against the same backend direct):"
  jq -rs '[.[] | select(.id | test("^i6-p99-.*-r[0-9]+$")) | select(.latency_ms.p99 != null)]
    | group_by(.target) | map({target: .[0].target, rounds: map(.latency_ms.p99 * 1000 | round),
        median: (map(.latency_ms.p99 * 1000) | sort | .[(length - 1) / 2 | floor] | round)})
    | (map(select(.target | endswith("direct"))) | map({key: (.target | sub("-direct$"; "")), value: .median}) | from_entries) as $direct
    | .[] | (if (.target | test("node$")) then $direct["node"] elif (.target | test("mosq$")) then $direct["mosquitto"] else null end) as $d
    | "- \(.target): median \(.median) (rounds \(.rounds | map(tostring) | join(", ")))"
      + (if $d then ", added \(.median - $d)" else "" end)' "$RES"
  echo
  echo "Commands:"
  jq -r '"- \(.id): `\(.cmd)`"' "$RES"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
log "results in $OUT"
