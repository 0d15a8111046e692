#!/bin/bash
# deb-test.sh -- install build/deb/farmsd_*.deb the way a Debian user does,
# into a scratch bookworm root (packaging/debian-root.sh), and check it:
# apt installs exactly the package's Depends, `dpkg -i` installs it, the
# installed binary prints the package's version and analyses a fixture, its
# man page is true to its help (man-check.sh), /etc/default/farmsd is a
# conffile, `farmsd serve` answers /readyz, systemd-analyze verifies the unit
# (where systemd-analyze exists), and `dpkg --purge` leaves nothing behind.
# Runs as root (chroot); the scratch root is removed at the end.
set -euo pipefail
t0=$SECONDS
fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (chroot, dpkg)"
deb=$(ls build/deb/farmsd_*.deb 2>/dev/null | head -n 1) || true
[ -n "$deb" ] || fail "no build/deb/farmsd_*.deb: run make deb first"
version=$(dpkg-deb -f "$deb" Version)
tarball=$(packaging/debian-root.sh)
mkdir -p build
work=$(mktemp -d "$PWD/build/deb-test.XXXXXX")
root=$work/root
pid=""
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

mkdir "$root" && tar -C "$root" -xf "$tarball"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/farmsd.deb"
cp tests/fixtures/checkpoints/mlp/mlp_step0000.safetensors "$root/tmp/"

# The package's Depends, first alternatives, without versions: what apt
# brings in is all that the binary gets.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$')
echo "deb-test: Depends: $(echo $deps)"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends $deps >/dev/null 2>"$work/apt.err" ||
    { cat "$work/apt.err"; fail "apt-get install of the Depends"; }
in_root dpkg -i /tmp/farmsd.deb >/dev/null
in_root dpkg -s farmsd | grep -q '^Status: install ok installed$' || fail "dpkg -s: not installed"

got=$(in_root farmsd version)
[ "$got" = "farmsd ${version%%-*}" ] || fail "farmsd version: '$got', package $version"
echo "deb-test: $got"
out=$(in_root farmsd analyze --quiet --format csv /tmp/mlp_step0000.safetensors)
n_ok=$(grep -c '^net\.[0-9]*\.weight,linear,.*,ok,' <<<"$out" || true)
[ "$n_ok" = 3 ] || fail "analyze: $n_ok of 3 weight matrices ok:"$'\n'"$out"
echo "deb-test: farmsd analyze: 3 of 3 weight matrices ok"

zcat "$root/usr/share/man/man1/farmsd.1.gz" > "$work/farmsd.1"
packaging/man-check.sh "$root/usr/bin/farmsd" "$work/farmsd.1"
grep -qx '/etc/default/farmsd' "$root/var/lib/dpkg/info/farmsd.conffiles" || fail "/etc/default/farmsd is not a conffile"
unit=$root/lib/systemd/system/farmsd.service
grep -qx 'ExecStart=/usr/bin/farmsd serve --data /var/lib/farmsd' "$unit" || fail "unit's ExecStart"
grep -qx 'EnvironmentFile=-/etc/default/farmsd' "$unit" || fail "unit's EnvironmentFile"

# The service as the unit starts it (its environment file, an unprivileged
# user), on a free loopback port: /readyz answers 200.
port=$((20000 + RANDOM % 20000))
mkdir -p "$root/var/lib/farmsd" && chown 65534:65534 "$root/var/lib/farmsd"
chroot --userspec=65534:65534 "$root" env -i FARMSD_LISTEN=127.0.0.1:$port \
    /usr/bin/farmsd serve --data /var/lib/farmsd >"$work/serve.log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 100); do
    ready=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
        printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3) 2>/dev/null) || true
    case $ready in *" 200 "*) break ;; esac
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; fail "farmsd serve exited"; }
    sleep 0.1
done
case $ready in *" 200 "*) ;; *) cat "$work/serve.log"; fail "/readyz: '$ready'" ;; esac
kill -TERM "$pid" && wait "$pid" || fail "farmsd serve: exit $? on SIGTERM"
pid=""
[ -s "$root/var/lib/farmsd/farms.db" ] || fail "no /var/lib/farmsd/farms.db"
echo "deb-test: farmsd serve: /readyz 200, stopped cleanly by SIGTERM"

# systemd-analyze verify checks the binary at ExecStart on this machine, so it
# reads a copy whose ExecStart is the scratch root's binary; any message fails.
if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s|^ExecStart=/usr/bin/farmsd |ExecStart=$root/usr/bin/farmsd |" "$unit" >"$work/farmsd.service"
    msg=$(systemd-analyze verify --man=no "$work/farmsd.service" 2>&1) || fail "systemd-analyze verify: $msg"
    [ -z "$msg" ] || fail "systemd-analyze verify: $msg"
    score=$(systemd-analyze security --offline=yes "$work/farmsd.service" 2>&1 |
        sed -n 's/.*Overall exposure level for farmsd.service: \([0-9.]*\).*/\1/p')
    echo "deb-test: systemd-analyze verify: ok; security exposure ${score:-?} (0 best, 10 worst)"
else
    echo "deb-test: systemd-analyze not installed: unit not verified"
fi

in_root dpkg --purge farmsd >/dev/null
for f in usr/bin/farmsd usr/share/man/man1/farmsd.1.gz lib/systemd/system/farmsd.service etc/default/farmsd; do
    [ ! -e "$root/$f" ] || fail "/$f left after dpkg --purge"
done
echo "deb-test: dpkg --purge removed everything"
echo "deb-test: ok ($((SECONDS - t0)) s)"
