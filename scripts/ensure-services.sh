#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback, as the test suite expects
# (postgres@127.0.0.1:5432 with trust auth, redis://127.0.0.1:6379). A stopped
# server is started; a missing one is installed from Debian's packages (needs root).
# Dovecot is only installed: the test harness starts its own on free ports.
# Chromium is only installed: the browser tests launch it through Playwright.
set -euo pipefail

log() { echo "ensure-services: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

# .ci/run sets SERVERSYNC_APT_UPDATED=1 when it has just run apt-get update.
apt_updated=${SERVERSYNC_APT_UPDATED:-}
apt_install() {
    command -v apt-get >/dev/null || die "$* missing and no apt-get to install it; install it by hand"
    log "installing $* from Debian's packages"
    [[ -n $apt_updated ]] || { as_root apt-get update -qq; apt_updated=1; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# wait_for NAME CHECK: retry CHECK for up to 30 s, then give up loudly.
wait_for() {
    for _ in $(seq 30); do $2 && return; sleep 1; done
    die "$1 does not answer on 127.0.0.1 after 30 s${3:+; see $3}"
}

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
pg_cluster() { as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main "$@"; }

ensure_postgres() {
    local fresh=
    if pg_up; then log "PostgreSQL is up"; return; fi
    if [[ -z $(pg_version) || ! -d /etc/postgresql/$(pg_version)/main ]]; then
        apt_install postgresql
        fresh=1
    fi
    if [[ -n $fresh ]]; then
        # A new cluster asks for a password over TCP; the tests connect as postgres without one.
        local hba=/etc/postgresql/$(pg_version)/main/pg_hba.conf
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        log "configured trust authentication for loopback in $hba"
    fi
    # The package may have started the cluster already: then reload, so pg_hba.conf is read.
    if pg_up; then pg_cluster reload; else log "starting PostgreSQL $(pg_version)"; pg_cluster start; fi
    wait_for PostgreSQL pg_up
    log "PostgreSQL is up"
}

redis_up() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

ensure_redis() {
    if redis_up; then log "Redis is up"; return; fi
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server
    # Installing may have started the packaged service; if not, start our own (nothing kept on disk).
    if ! redis_up; then
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /tmp --logfile /tmp/serversync-redis.log
        wait_for Redis redis_up /tmp/serversync-redis.log
    fi
    log "Redis is up"
}

dovecot_installed() { command -v dovecot >/dev/null && command -v doveadm >/dev/null && id dovenull >/dev/null 2>&1; }

# The packages would start the distribution's Dovecot on ports 143/993/110/995;
# the tests start their own (tests/harness/dovecot.py), so keep that one from starting.
ensure_dovecot() {
    if dovecot_installed; then log "Dovecot is installed"; return; fi
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# serversync: no services started during install\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        own_policy=1
    fi
    apt_install dovecot-imapd dovecot-pop3d dovecot-lmtpd || { [[ -z $own_policy ]] || as_root rm -f "$policy"; exit 1; }
    [[ -z $own_policy ]] || as_root rm -f "$policy"
    # Where something started it anyway (systemd ignores policy-rc.d for some units), stop it.
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        as_root systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
    elif [[ -e /run/dovecot/master.pid ]]; then
        as_root doveadm stop >/dev/null 2>&1 || true
    fi
    dovecot_installed || die "Dovecot installed, but dovecot, doveadm or the dovenull user is missing"
    id mail >/dev/null 2>&1 || die "the mail user is missing; the test harness stores mail as mail:mail"
    log "Dovecot is installed (the tests start their own)"
}

# The browser tests (tests/ui/) launch Debian's Chromium through Playwright's
# executable_path; `playwright install` would download a browser, which we never do.
ensure_chromium() {
    if [[ -x /usr/bin/chromium ]]; then log "Chromium is installed"; return; fi
    apt_install chromium
    [[ -x /usr/bin/chromium ]] || die "chromium installed, but /usr/bin/chromium is missing"
    log "Chromium is installed"
}

ensure_postgres
ensure_redis
ensure_dovecot
ensure_chromium
# The suite's default connection (config/settings_test.py); fail here with the reason, not in every test.
if [[ -z ${DATABASE_URL:-} ]]; then
    psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null \
        || die "PostgreSQL is up but does not let user postgres in without a password on 127.0.0.1"
fi
