#!/bin/bash
# test.sh -- `make docker-test`: build docker/Dockerfile without a registry and
# smoke-test the image. The base is a Debian bookworm root made with mmdebstrap
# (packaging/debian-root.sh, cached in build/) and imported with podman;
# `podman build --isolation chroot --network host` builds with it as BASE.
# Then, inside the image (buildah run: podman run cannot set rlimits here):
# the user is farmsd (uid 10001), `farmsd version`, `farmsd analyze` of a
# fixture, and `farmsd serve` with its own HEALTHCHECK command answering on
# /readyz (and failing before the service is up and after it stopped).
# Everything it made (images, containers, the build context's layers) is
# removed at the end. Needs root; installs podman, buildah, mmdebstrap, uidmap
# and fuse-overlayfs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
fail() { echo "docker-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (podman, buildah, mmdebstrap)"
missing=""
for p in podman buildah mmdebstrap uidmap fuse-overlayfs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "docker-test: installing$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

tarball=$(packaging/debian-root.sh)
tag=$$-$RANDOM
base=localhost/farmsd-test-base:$tag
image=localhost/farmsd-test:$tag
ctr=""
pid=""
log=build/docker-test.log
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
    podman rmi -f "$image" "$base" >/dev/null 2>&1 || true
    podman image prune -f --filter "label=farmsd-docker-test=$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

podman import --quiet "$tarball" "$base" >/dev/null
t1=$SECONDS
podman build --isolation chroot --network host --format docker --layers=false \
    --label "farmsd-docker-test=$tag" --build-arg "BASE=$base" \
    -f docker/Dockerfile -t "$image" . >"$log" 2>&1 || { tail -n 30 "$log"; fail "podman build (see $log)"; }
! grep -q "'build/farmsd' is up to date" "$log" || fail "the image took a binary from the build context"
echo "docker-test: built $image in $((SECONDS - t1)) s (log: $log)"

user=$(podman image inspect --format '{{.Config.User}}' "$image")
[ "$user" = farmsd ] || fail "image user '$user', want farmsd"
hc=$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$image")
[ "$hc" = '["CMD","farmsd-healthcheck"]' ] || fail "image HEALTHCHECK $hc"

ctr=$(buildah from --quiet "$image")
run() { buildah run --isolation chroot "$@"; }
uid=$(run "$ctr" -- id -u)
[ "$uid" = 10001 ] || fail "runs as uid $uid, want 10001"
got=$(run "$ctr" -- farmsd version)
[[ $got =~ ^farmsd\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "farmsd version: '$got'"
echo "docker-test: user farmsd (uid $uid), HEALTHCHECK farmsd-healthcheck, $got"

out=$(run -v "$PWD/tests/fixtures/checkpoints/mlp:/fixtures:ro" "$ctr" -- \
    farmsd analyze --quiet --format csv /fixtures/mlp_step0000.safetensors)
n_ok=$(grep -c '^net\.[0-9]*\.weight,linear,.*,ok,' <<<"$out" || true)
[ "$n_ok" = 3 ] || fail "analyze: $n_ok of 3 weight matrices ok:"$'\n'"$out"
echo "docker-test: farmsd analyze: 3 of 3 weight matrices ok"

# serve as the image's CMD does (FARMSD_LISTEN moved to a free loopback port;
# buildah's chroot isolation shares this machine's network).
port=$((20000 + RANDOM % 20000))
env=(--env "FARMSD_LISTEN=127.0.0.1:$port")
! run "${env[@]}" "$ctr" -- farmsd-healthcheck 2>/dev/null || fail "health check passes with no service"
# buildah itself in the background (not the run function: a subshell), so
# that killing $pid stops buildah, which kills the service.
buildah run --isolation chroot "${env[@]}" "$ctr" -- farmsd serve >build/docker-test-serve.log 2>&1 &
pid=$!
ok=""
for _ in $(seq 1 60); do
    if run "${env[@]}" "$ctr" -- farmsd-healthcheck 2>/dev/null; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
done
[ -n "$ok" ] || { cat build/docker-test-serve.log; fail "farmsd-healthcheck never passed"; }
body=$(exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && cat <&3)
grep -q '"status":"ready"' <<<"$body" || fail "/readyz: $body"
for f in /data/farms.db /data/blobs; do
    run "$ctr" -- test -O "$f" || fail "$f missing or not owned by farmsd"
done
kill "$pid" && wait "$pid" 2>/dev/null || true
pid=""
stopped=""
for _ in $(seq 1 10); do # buildah's child may outlive it for a moment
    if ! run "${env[@]}" "$ctr" -- farmsd-healthcheck 2>/dev/null; then stopped=1; break; fi
    sleep 1
done
[ -n "$stopped" ] || fail "health check still passes after the service was stopped"
echo "docker-test: farmsd serve: HEALTHCHECK passes on /readyz (and fails without the service); /data/farms.db and /data/blobs owned by farmsd"
echo "docker-test: ok ($((SECONDS - t0)) s)"
