#!/bin/sh
# pg_cluster.sh -- a throw-away PostgreSQL cluster for the tests.
#
#   tests/pg_cluster.sh start   initdb a cluster in a new temporary folder, start it
#                               listening only on a unix socket in that folder, create
#                               database farmsd, print its URL (exit 1 with the reason
#                               on stderr if PostgreSQL cannot be started)
#   tests/pg_cluster.sh url     print the URL of the running cluster
#   tests/pg_cluster.sh stop    stop it and remove the folder
#   tests/pg_cluster.sh halt    stop the server, keep the cluster (an outage)
#   tests/pg_cluster.sh resume  start the halted server again
#
# The folder's name is kept in build/pg_cluster.dir. initdb refuses to run as
# root: as root the cluster runs as the `postgres` user (Debian's postgresql
# package creates it).
set -u
state=build/pg_cluster.dir

bin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { bin=$d; break; }
done
[ -z "$bin" ] && command -v initdb >/dev/null 2>&1 && bin=$(dirname "$(command -v initdb)")

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

server_start() {
    as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
        -o "-k $1 -c listen_addresses= -c fsync=off -c max_connections=200" start \
        >/dev/null 2>&1 || { cat "$1/server.log" >&2; return 1; }
}

url_of() {
    echo "postgresql://postgres@/farmsd?host=$1"
}

case "${1:-}" in
start)
    [ -n "$bin" ] || { echo "pg_cluster: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "pg_cluster: running as root and there is no postgres user" >&2; exit 1
    fi
    [ -f "$state" ] && "$0" stop
    mkdir -p build
    dir=$(mktemp -d /tmp/farmsd-pg.XXXXXX) || exit 1
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    echo "$dir" > "$state"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    server_start "$dir" || exit 1
    as_owner "$bin/createdb" -h "$dir" -U postgres farmsd || exit 1
    url_of "$dir"
    ;;
url)
    [ -f "$state" ] || exit 1
    url_of "$(cat "$state")"
    ;;
halt)
    [ -f "$state" ] || { echo "pg_cluster: no cluster" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$(cat "$state")/data" -m fast -w stop >/dev/null
    ;;
resume)
    [ -f "$state" ] || { echo "pg_cluster: no cluster" >&2; exit 1; }
    server_start "$(cat "$state")"
    ;;
stop)
    [ -f "$state" ] || exit 0
    dir=$(cat "$state")
    [ -n "$bin" ] && [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$dir" "$state"
    ;;
*)
    echo "usage: $0 start|url|stop|halt|resume" >&2; exit 2
    ;;
esac
