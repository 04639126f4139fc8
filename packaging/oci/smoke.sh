#!/usr/bin/env bash
# Smoke-tests the Skerry image with Docker, from the host:
# 1. the image's default command (its own packaging/oci/skerry.yaml) on a
#    fresh named volume: runs as uid 10001, its HEALTHCHECK turns healthy,
#    /health, /ready and /metrics answer on the published admin port, the
#    bundled CA appears in /data/ca, an anonymous mosquitto_sub/mosquitto_pub
#    round trip passes through the published balancer port (1883), and
#    `docker stop` ends it with exit code 0 well within the grace period;
# 2. a mounted configuration and users file (the user added by the image's
#    own `skerry passwd`): anonymous clients are refused, the user's round
#    trip passes, and it stops the same way;
# 3. the embedded default (`skerry run`, no -c): healthy, its state in
#    /data/skerry-data, written by the non-root user.
#
#   bash packaging/oci/smoke.sh [IMAGE]       # default skerry:<workspace version>
#
# SKERRY_SMOKE_VIA=node is for as long as `skerry run` does not start the
# balancer: step 1 skips its round trip, and step 2 mounts a file whose
# broker node itself listens on the container's port 1883. The default
# (lb) goes through the balancer in both.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

image=${1:-skerry:$(skerry_version)}
via=${SKERRY_SMOKE_VIA:-lb}
[[ $via == lb || $via == node ]] || die "SKERRY_SMOKE_VIA must be lb or node"
grace_s=30 # lb.grace_period's default; docker stop waits longer before SIGKILL
for cmd in docker mosquitto_pub mosquitto_sub python3; do
  command -v "$cmd" >/dev/null || die "$cmd is missing"
done
docker image inspect "$image" >/dev/null || die "no image $image (run packaging/oci/build.sh)"

tag="skerry-smoke-$$"
work=$(mktemp -d)
chmod 0755 "$work" # bind-mounted into containers that run as uid 10001
containers=() volumes=() mounts=()
cleanup() {
  local rc=$? c v
  for c in "${containers[@]}"; do
    if ((rc != 0)); then
      echo "--- docker logs $c (last 30 lines):" >&2
      docker logs --tail 30 "$c" >&2 2>&1 || true
    fi
    docker rm -f "$c" >/dev/null 2>&1 || true
  done
  for v in "${volumes[@]}"; do docker volume rm -f "$v" >/dev/null 2>&1 || true; done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# Starts container $tag-NAME (`docker run` arguments after the image
# follow NAME) and sets $c to its name. Not in $(...): the arrays that
# cleanup reads must be updated in this shell.
start() {
  local name="$tag-$1"
  shift
  docker volume create "$name" >/dev/null
  volumes+=("$name")
  containers+=("$name")
  # The image's HEALTHCHECK command, probed every second instead of every
  # 10 s so the test does not wait for the first interval.
  docker run -d --name "$name" --health-interval=1s \
    -p 127.0.0.1::1883 -p 127.0.0.1::8888 -v "$name:/data" \
    "${mounts[@]}" "$image" "$@" >/dev/null
  c=$name
}
host_port() { docker port "$1" "$2/tcp" | head -n 1 | sed 's/.*://'; }
wait_healthy() { # CONTAINER STARTED_AT
  local c=$1 deadline=$((SECONDS + 30)) status
  while :; do
    status=$(docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$c")
    [[ $status == "running healthy" ]] && break
    [[ $status == running* ]] || die "$c is $status"
    ((SECONDS < deadline)) || die "$c not healthy after 30s ($status)"
    sleep 0.5
  done
  echo "$c: healthy after $((SECONDS - $2))s"
}
data_listing() { docker cp "$1:/data" - | tar -tv --numeric-owner; }
check_admin() {
  python3 - "$(host_port "$1" 8888)" <<'EOF' || die "admin endpoint checks failed"
import sys, urllib.request
base = "http://127.0.0.1:" + sys.argv[1]
for path, want in (("/health", b"ok"), ("/ready", b"ready"), ("/metrics", b"# ")):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        body = r.read()
        assert r.status == 200 and want in body, (path, r.status, body[:200])
print("admin: /health, /ready and /metrics answer 200 on the published port")
EOF
}
stop_within_grace() {
  local c=$1 t0 ms code
  t0=$(date +%s%N)
  docker stop -t $((grace_s + 15)) "$c" >/dev/null
  ms=$((($(date +%s%N) - t0) / 1000000))
  code=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  echo "$c: docker stop took ${ms} ms, exit code $code"
  ((code == 0)) || die "$c exited with $code (137 means SIGKILL after the timeout)"
  ((ms < grace_s * 1000)) || die "$c took ${ms} ms to stop, beyond the ${grace_s}s grace period"
  docker logs "$c" >"$work/$c.log" 2>&1
  grep -q "skerry stopped" "$work/$c.log" || die "$c did not log 'skerry stopped'"
}

step "image $image: $(docker image inspect -f '{{.Size}} bytes, user {{.Config.User}}, volumes {{json .Config.Volumes}}' "$image")"
[[ $(docker image inspect -f '{{.Config.User}}' "$image") == 10001:10001 ]] || die "image does not run as 10001"

step "1. docker run $image (its default command and configuration)"
t_start=$SECONDS
start main
wait_healthy "$c" "$t_start"
uid=$(docker top "$c" -o pid,uid | awk 'NR == 2 {print $2}')
[[ $uid == 10001 ]] || die "skerry runs as uid $uid, not 10001"
echo "$c: skerry runs as uid $uid"
check_admin "$c"
data_listing "$c" >"$work/main.ls" # not into grep -q: pipefail and SIGPIPE
grep -Eq ' 10001/10001 .* data/ca/ca\.crt$' "$work/main.ls" ||
  die "the bundled CA was not created in /data/ca by uid 10001: $(cat "$work/main.ls")"
echo "$c: bundled CA created in /data/ca by uid 10001"
if [[ $via == lb ]]; then
  bash "$SKERRY_ROOT/packaging/scripts/pubsub.sh" 127.0.0.1 "$(host_port "$c" 1883)" smoke/oci/hello
else
  echo "SKERRY_SMOKE_VIA=node: no round trip through the balancer here (see step 2)"
fi
stop_within_grace "$c"

step "2. a mounted configuration and users file (via $via)"
install -d -m 0777 "$work/etc"
printf '%s\n' smoke-secret |
  docker run --rm -i -v "$work/etc:/out" "$image" passwd --password-stdin /out/users smoke
chmod 0644 "$work/etc/users"
if [[ $via == lb ]]; then
  # The image's own file, closed to anonymous clients.
  sed -e 's|^  allow_anonymous: true$|  allow_anonymous: false\n  users_file: /etc/skerry/users|' \
    "$SKERRY_ROOT/packaging/oci/skerry.yaml" >"$work/etc/skerry.yaml"
else
  cat >"$work/etc/skerry.yaml" <<'EOF'
admin:
  bind: 0.0.0.0:8888
broker:
  allow_anonymous: false
  users_file: /etc/skerry/users
  nodes:
    - name: node1
      data_dir: /data/node1
      listeners:
        - name: mqtt
          bind: 0.0.0.0:1883
EOF
fi
grep -q '^  users_file: /etc/skerry/users$' "$work/etc/skerry.yaml" || die "could not write the mounted configuration"
chmod 0644 "$work/etc/skerry.yaml"
mounts=(-v "$work/etc/skerry.yaml:/etc/skerry/skerry.yaml:ro" -v "$work/etc/users:/etc/skerry/users:ro")
t_start=$SECONDS
start mounted
wait_healthy "$c" "$t_start"
port=$(host_port "$c" 1883)
if mosquitto_pub -h 127.0.0.1 -p "$port" -i smoke-anon -q 1 -t smoke/x -m x 2>"$work/anon.err"; then
  die "an anonymous client was admitted (allow_anonymous: false)"
fi
echo "anonymous client refused: $(head -n 1 "$work/anon.err")"
bash "$SKERRY_ROOT/packaging/scripts/pubsub.sh" 127.0.0.1 "$port" smoke/oci/auth smoke smoke-secret
stop_within_grace "$c"

step "3. docker run $image run (the embedded default, state in /data/skerry-data)"
mounts=()
t_start=$SECONDS
start embedded run
wait_healthy "$c" "$t_start"
data_listing "$c" >"$work/embedded.ls"
grep -Eq ' 10001/10001 .* data/skerry-data/ca/ca\.crt$' "$work/embedded.ls" ||
  die "no /data/skerry-data/ca/ca.crt owned by 10001: $(cat "$work/embedded.ls")"
echo "$c: /data/skerry-data/ca created by uid 10001"
stop_within_grace "$c"
step "OCI smoke test passed"
