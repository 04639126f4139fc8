#!/usr/bin/env bash
# One publish/subscribe round trip through a running Skerry, with the
# Mosquitto command-line clients: a subscriber waits on TOPIC, a publisher
# sends a unique payload (QoS 1) until the subscriber has it, and the
# payload that arrives must be the one sent.
#
#   pubsub.sh HOST PORT TOPIC [USER PASSWORD]
#
# Publishing repeatedly (instead of sleeping before one publish) closes the
# race between the subscriber's SUBSCRIBE and the first PUBLISH without a
# fixed delay. Exits 0 on success, 1 with the clients' output otherwise.
set -euo pipefail

host=$1 port=$2 topic=$3
auth=()
if (($# >= 5)); then
  auth=(-u "$4" -P "$5")
fi
payload="skerry-smoke-$$-$RANDOM"
work=$(mktemp -d)
trap 'kill "${sub_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

mosquitto_sub -h "$host" -p "$port" "${auth[@]}" -i "smoke-sub-$$" -q 1 \
  -t "$topic" -C 1 -W 20 -v >"$work/sub.out" 2>"$work/sub.err" &
sub_pid=$!

deadline=$((SECONDS + 20))
sent=0
while kill -0 "$sub_pid" 2>/dev/null && ((SECONDS < deadline)); do
  if mosquitto_pub -h "$host" -p "$port" "${auth[@]}" -i "smoke-pub-$$" -q 1 \
    -t "$topic" -m "$payload" 2>>"$work/pub.err"; then
    sent=$((sent + 1))
  fi
  sleep 0.3
done
wait "$sub_pid" && sub_rc=0 || sub_rc=$?
sub_pid=

got=$(cat "$work/sub.out")
if [[ $sub_rc == 0 && $got == "$topic $payload" ]]; then
  echo "pubsub: $host:$port $topic: received '$payload' (${sent} publish(es) sent)"
  exit 0
fi
echo "pubsub: $host:$port $topic: FAILED (subscriber exit $sub_rc, ${sent} publish(es) accepted)" >&2
echo "--- subscriber stdout:" >&2; cat "$work/sub.out" >&2
echo "--- subscriber stderr:" >&2; cat "$work/sub.err" >&2
echo "--- publisher stderr (last lines):" >&2; tail -n 5 "$work/pub.err" >&2
exit 1
