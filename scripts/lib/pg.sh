# shellcheck shell=bash
# scripts/lib/pg.sh: a private PostgreSQL cluster for development and
# tests, sourced by scripts/dev.sh and tests/run. The cluster listens only
# on a UNIX socket in its own directory, trusts local connections, and has
# the superuser "parley". PostgreSQL refuses to run as root, so when we are
# root the cluster belongs to an unprivileged user (PG_OS_USER).
#
# Layout under a cluster directory D:  D/data (PGDATA), D (socket),
# D/postgresql.log. Connection string: "host=D dbname=... user=parley".

# The newest /usr/lib/postgresql/*/bin that has initdb.
pg_bindir() {
    local d best=""
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [ -x "$d/initdb" ] && best=$d
    done
    [ -n "$best" ] || { echo "pg.sh: no PostgreSQL server in /usr/lib/postgresql/*/bin" >&2; return 1; }
    echo "$best"
}

# Runs a command as the cluster's owner.
pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "${PG_OS_USER:?}" -- "$@"
    else
        "$@"
    fi
}

# pg_init DIR: creates the cluster in DIR unless DIR/data exists.
pg_init() {
    local dir=$1 bindir
    bindir=$(pg_bindir) || return 1
    if [ -f "$dir/data/PG_VERSION" ]; then
        return 0
    fi
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown "$PG_OS_USER:" "$dir"
    fi
    chmod 0700 "$dir"
    (cd "$dir" && pg_as_owner "$bindir/initdb" -D "$dir/data" -A trust -U parley \
        -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1) || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    pg_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 200
EOF
}

# pg_tune_for_tests DIR: trades durability for speed (throwaway clusters).
pg_tune_for_tests() {
    pg_as_owner tee -a "$1/data/postgresql.conf" >/dev/null <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# pg_start DIR: starts the cluster unless it is already running.
pg_start() {
    local dir=$1 bindir
    bindir=$(pg_bindir) || return 1
    if (cd "$dir" && pg_as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1); then
        return 0
    fi
    (cd "$dir" && pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" \
        -w -t 60 start >/dev/null) || {
        tail -n 20 "$dir/postgresql.log" >&2
        return 1
    }
}

# pg_stop DIR: stops the cluster if it runs.
pg_stop() {
    local dir=$1 bindir
    bindir=$(pg_bindir) || return 1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    (cd "$dir" && pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null)
}

# pg_createdb DIR NAME: creates database NAME unless it exists.
pg_createdb() {
    local dir=$1 name=$2 bindir
    bindir=$(pg_bindir) || return 1
    if [ "$("$bindir/psql" -X -tAq -h "$dir" -U parley -d postgres \
            -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" = 1 ]; then
        return 0
    fi
    "$bindir/createdb" -h "$dir" -U parley "$name"
}

# pg_pick_owner: sets PG_OS_USER when running as root (PG_OS_USER from the
# environment, else "parley" if that user exists, else "nobody").
pg_pick_owner() {
    [ "$(id -u)" = 0 ] || return 0
    if [ -z "${PG_OS_USER:-}" ]; then
        if id -u parley >/dev/null 2>&1; then
            PG_OS_USER=parley
        else
            PG_OS_USER=nobody
        fi
    fi
    export PG_OS_USER
}
