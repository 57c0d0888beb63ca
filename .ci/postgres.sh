#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests, from Debian's `postgresql` package.
#   .ci/postgres.sh start DIR [PORT]   initdb into DIR, start it, print the URL
#                                     (PORT: a free one when not given)
#   .ci/postgres.sh stop DIR           stop it (the caller removes DIR)
# It listens on a Unix socket in DIR and on 127.0.0.1:PORT, trusts local
# connections (nothing else can reach it), and runs as the `postgres` user
# because PostgreSQL refuses to run as root.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
action=$1 dir=$2
port=${3:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $action in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    as_postgres "$bin/createdb" -h "$dir" -p "$port" -U postgres tgplus_test
    echo "postgresql://postgres@127.0.0.1:$port/tgplus_test"
    ;;
stop)
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: $0 start DIR [PORT] | stop DIR" >&2
    exit 2
    ;;
esac
