#!/bin/bash
# scripts/dev.sh: the developer's entry point on a fresh Debian 12 machine.
#
#   scripts/dev.sh run     install packages, build, and run parleyd in the
#                          foreground with a private PostgreSQL cluster and
#                          a self-signed certificate for "localhost"
#   scripts/dev.sh test    install packages, build, run tests/run
#
# and the steps they are made of (used by .ci/run):
#
#   scripts/dev.sh install                     missing Debian packages only
#   scripts/dev.sh build [DIR [CONFIGURE-ARGS...]]
#                          autoreconf if needed, configure DIR (default
#                          build/) out of tree, make -j2 (unit tests too)
#
# Environment: PARLEY_STATE (state directory for `run`), PARLEY_BUILD_JOBS
# (make -j, default 2).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${PARLEY_BUILD_JOBS:-2}

# shellcheck source=lib/pg.sh
. "$REPO/scripts/lib/pg.sh"

PACKAGES=(
    build-essential autoconf automake libtool pkg-config
    libexpat1-dev libgnutls28-dev nettle-dev libevent-dev libpq-dev
    libidn11-dev libc-ares-dev
    postgresql gnutls-bin python3 python3-slixmpp valgrind procps
    prosody dnsmasq-base
)

say() { printf '%s\n' "dev.sh: $*"; }
die() { printf '%s\n' "dev.sh: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    else
        command -v sudo >/dev/null || die "not root and no sudo: cannot run $*"
        sudo "$@"
    fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs the packages that are missing. Installing postgresql may create
# and start Debian's system cluster; nothing here uses it, and it is left
# alone (our clusters listen only on sockets in their own directories).
cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "all packages installed"
        return 0
    fi
    say "installing: ${missing[*]}"
    # Services of the new packages (Debian's PostgreSQL cluster, prosody)
    # are not started: a policy-rc.d that denies starts is put in place for
    # the install unless the machine already has one.
    local policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 0755 "$policy"
        added_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if [ "$rc" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o Dpkg::Options::=--force-confdef \
            -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null || rc=$?
    fi
    if [ "$added_policy" = 1 ]; then
        as_root rm -f "$policy"
    fi
    return "$rc"
}

# configure is regenerated when it is missing or older than its inputs.
need_autoreconf() {
    [ -x "$REPO/configure" ] || return 0
    [ -f "$REPO/Makefile.in" ] || return 0
    [ "$REPO/configure.ac" -nt "$REPO/configure" ] && return 0
    [ "$REPO/Makefile.am" -nt "$REPO/Makefile.in" ] && return 0
    return 1
}

# The configure arguments a build directory was made with, one a line.
configured_args() {
    local line
    line=$("$1/config.status" --config 2>/dev/null) || return 0
    eval "set -- $line"
    [ $# -eq 0 ] || printf '%s\n' "$@"
}

# cmd_build [DIR [CONFIGURE-ARGS...]]: an out-of-tree build. DIR is
# (re)configured when it has never been, when configure is newer than its
# config.status, or when CONFIGURE-ARGS are given and differ from those it
# was configured with.
cmd_build() {
    local dir=${1:-build}
    [ $# -gt 0 ] && shift
    case $dir in /*) ;; *) dir=$REPO/$dir ;; esac
    if need_autoreconf; then
        say "autoreconf -fi"
        (cd "$REPO" && autoreconf -fi)
    fi
    mkdir -p "$dir"
    local have="" want="" args=()
    if [ -f "$dir/config.status" ]; then
        have=$(configured_args "$dir")
    fi
    [ $# -eq 0 ] || want=$(printf '%s\n' "$@")
    if [ ! -f "$dir/config.status" ] || { [ $# -gt 0 ] && [ "$have" != "$want" ]; } ||
        [ "$REPO/configure" -nt "$dir/config.status" ]; then
        if [ $# -eq 0 ] && [ -n "$have" ]; then
            mapfile -t args <<<"$have"
            set -- "${args[@]}"
        fi
        say "configuring $dir $*"
        (cd "$dir" && "$REPO/configure" "$@")
    fi
    say "building $dir"
    make -C "$dir" -j"$JOBS"
    # the unit test programs (check_PROGRAMS) without running them
    make -C "$dir" -j"$JOBS" check TESTS=
}

# ---- run ----

# The state directory: PARLEY_STATE, else ./state in the repository; as
# root, PostgreSQL runs as the system user "parley", which must be able to
# reach the directory, else /var/lib/parley-dev is used.
pick_state_dir() {
    if [ -n "${PARLEY_STATE:-}" ]; then
        STATE=$PARLEY_STATE
    else
        STATE=$REPO/state
    fi
    if [ "$(id -u)" = 0 ]; then
        if ! id -u parley >/dev/null 2>&1; then
            say "creating system user parley"
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin parley
        fi
        PG_OS_USER=parley
        export PG_OS_USER
        if [ -z "${PARLEY_STATE:-}" ] && ! runuser -u parley -- test -x "$REPO"; then
            STATE=/var/lib/parley-dev
            say "$REPO is not reachable by user parley"
        fi
    fi
    mkdir -p "$STATE"
    chmod 0755 "$STATE"
    say "state directory: $STATE"
}

make_certificate() {
    local cert=$STATE/localhost.pem key=$STATE/localhost.key
    [ -s "$cert" ] && [ -s "$key" ] && return 0
    say "generating a self-signed certificate for localhost"
    if command -v certtool >/dev/null; then
        cat >"$STATE/localhost.tmpl" <<EOF
cn = "localhost"
dns_name = "localhost"
tls_www_server
signing_key
encryption_key
expiration_days = 365
EOF
        certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$key" >/dev/null 2>&1
        certtool --generate-self-signed --load-privkey "$key" --template "$STATE/localhost.tmpl" \
            --outfile "$cert" >/dev/null 2>&1
        rm -f "$STATE/localhost.tmpl"
    else
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$key" -out "$cert" -days 365 \
            -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1
    fi
    chmod 0600 "$key"
}

write_config() {
    local conf=$STATE/parley.conf
    if [ -f "$conf" ]; then
        say "using existing $conf"
        return 0
    fi
    say "writing $conf"
    cat >"$conf" <<EOF
# Parley development configuration (written by scripts/dev.sh).
log_level info;
modules_dir "$REPO/build/modules";
control_socket "$STATE/ctl.sock";
database { conninfo "host=$STATE/pg dbname=parley user=parley"; pool_size 4; }
auth { scram_iterations 4096; }
tls { c2s_require yes; }
listen c2s 127.0.0.1:5222;
listen c2s_tls 127.0.0.1:5223;
limits { max_stanza_size 256k; unauth_timeout 30s; auth_failures 5; auth_window 60s; }
modules { auth_pg; disco; ping; version; time; }
vhost localhost { certificate "$STATE/localhost.pem"; key "$STATE/localhost.key"; }
EOF
}

PARLEYD_PID=""
on_exit() {
    local rc=$?
    if [ -n "$PARLEYD_PID" ] && kill -0 "$PARLEYD_PID" 2>/dev/null; then
        kill -TERM "$PARLEYD_PID" 2>/dev/null || true
        wait "$PARLEYD_PID" 2>/dev/null || true
    fi
    say "stopping PostgreSQL"
    pg_stop "$STATE/pg" || true
    exit $rc
}

cmd_run() {
    cmd_install
    cmd_build build
    pick_state_dir
    pg_init "$STATE/pg"
    trap on_exit EXIT
    pg_start "$STATE/pg"
    pg_createdb "$STATE/pg" parley
    make_certificate
    write_config
    say "add a user with:  $REPO/build/parleyctl --config $STATE/parley.conf user add alice@localhost"
    say "starting parleyd (Ctrl-C stops it)"
    # parleyd runs as a child so that the trap can stop PostgreSQL after it
    "$REPO/build/parleyd" --config "$STATE/parley.conf" &
    PARLEYD_PID=$!
    trap 'kill -TERM "$PARLEYD_PID" 2>/dev/null || true' INT TERM HUP
    local rc=0
    while kill -0 "$PARLEYD_PID" 2>/dev/null; do
        wait "$PARLEYD_PID" && rc=0 || rc=$?
    done
    PARLEYD_PID=""
    say "parleyd exited with status $rc"
    return "$rc"
}

cmd_test() {
    cmd_install
    cmd_build build
    local rc=0
    "$REPO/tests/run" "$@" || rc=$?
    return "$rc"
}

case ${1:-} in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    install) cmd_install ;;
    build) shift; cmd_build "$@" ;;
    *)
        echo "usage: scripts/dev.sh run | test [tests/run args] | install | build [DIR [configure args]]" >&2
        exit 2
        ;;
esac
