#!/usr/bin/env bash
# A private Docker engine for Gridmarket's tests (docs/docker.md).
#
#   scripts/docker_engine.sh [start] [DIR]   install if missing, start dockerd if not answering,
#                                            print the DOCKER_HOST to use (the only stdout line)
#   scripts/docker_engine.sh stop [DIR]      stop the dockerd this script started (by its pidfile)
#   scripts/docker_engine.sh status [DIR]    exit 0 and print DOCKER_HOST if it answers, else 1
#
#   export DOCKER_HOST="$(scripts/docker_engine.sh)"
#
# DIR (default $GRID_DOCKER_DIR, else /var/lib/gridmarket-docker) holds everything of this engine:
#   DIR/docker.sock  the API socket          DIR/dockerd.pid  dockerd's pidfile
#   DIR/dockerd.log  dockerd's log           DIR/data         --data-root (images, containers)
#   DIR/exec         --exec-root (dockerd's own containerd lives under it)
# It is independent of any system dockerd on /var/run/docker.sock and never touches one.
#
# Networking: `--bridge=none --iptables=false --ip-forward=false --ip-masq=false`: no docker0
# bridge and no private address range is ever created, no iptables rule is written; containers
# can use only network `none` (loopback only) or `host` (the machine's loopback, for tests).
#
# Storage driver: overlay2 when the kernel can mount overlayfs on DIR's filesystem (probed below
# with a real overlay mount; true on this VM: ext4 backing, kernel overlay support), else vfs
# (works everywhere, but copies every layer in full: slower and bigger). GRID_DOCKER_STORAGE_DRIVER
# overrides. A data-root keeps the driver it was first started with (remembered in
# DIR/storage-driver) because images stored by one driver are invisible to another.
#
# cgroups: this VM mounts cgroup v1 (hybrid, with an empty cgroup2 at /sys/fs/cgroup/unified);
# dockerd uses the cgroupfs driver there, and memory, pids and cpu (CFS quota) limits are enforced
# (verified with real containers, see docs/docker.md).
#
# Environment: GRID_DOCKER_DIR, GRID_DOCKER_STORAGE_DRIVER, GRID_DOCKER_START_TIMEOUT (seconds,
# default 60), GRID_DOCKER_LOG_LEVEL (default info).
set -euo pipefail

log() { echo "docker_engine: $*" >&2; }
die() { log "error: $*"; exit 1; }

cmd=start
case "${1:-}" in
    start|stop|status) cmd=$1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
esac
DIR=${1:-${GRID_DOCKER_DIR:-/var/lib/gridmarket-docker}}
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
LOGFILE="$DIR/dockerd.log"
HOST="unix://$SOCK"
TIMEOUT=${GRID_DOCKER_START_TIMEOUT:-60}

# A unix socket path must fit in 108 bytes; dockerd's containerd puts its socket under exec-root.
[ ${#DIR} -le 60 ] || die "DIR is too long for unix socket paths (${#DIR} > 60 chars): $DIR"

answering() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 10 docker -H "$HOST" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

log_tail() {  # the end of dockerd's log without its start-up grpc chatter
    grep -v 'module=grpc' "$LOGFILE" | tail -n 25 >&2 || true
}

release_data_root() {
    # Mounts a stopped dockerd leaves behind: its data-root bind-mounted onto itself (after a
    # hard death), and, even after a clean stop, exec/netns/default (a bind of the host's
    # network namespace, libnetwork's sandbox for --network host). Harmless to a next dockerd,
    # but they make `rm -rf DIR` fail; only called when no dockerd of ours runs.
    local m
    for m in "$DIR"/exec/netns/*; do
        if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || true; fi
    done
    if mountpoint -q "$DIR/data" 2>/dev/null; then umount "$DIR/data" 2>/dev/null || true; fi
}

alive() {  # a live process (a zombie, which PID 1 here may reap only later, is not)
    [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

clear_stale_containerd() {
    # dockerd runs its own containerd and records it in exec-root; after dockerd died hard
    # (kill -9, a session's end) that containerd may live on, or its pidfile may name a zombie
    # or an unrelated process, and the next dockerd then waits on it and fails with
    # "timeout waiting for containerd to start". Stop an orphan of ours, drop the pidfile.
    local f="$DIR/exec/containerd/containerd.pid" cpid
    [ -f "$f" ] || return 0
    cpid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$cpid" ] && alive "$cpid" \
            && tr '\0' ' ' < "/proc/$cpid/cmdline" | grep -q -- "--config $DIR/exec/containerd/"; then
        log "stopping the containerd (pid $cpid) left by a dead dockerd"
        kill -TERM "$cpid" 2>/dev/null || true
        for _ in $(seq 1 20); do alive "$cpid" || break; sleep 0.5; done
        ! alive "$cpid" || kill -KILL "$cpid" 2>/dev/null || true
    fi
    rm -f "$f"
}

our_pid() {  # the pid of the dockerd recorded in DIR's pidfile, if that process is a dockerd
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "dockerd.*--pidfile $PIDFILE" || return 1
    echo "$pid"
}

if [ "$cmd" = status ]; then
    if answering; then echo "$HOST"; exit 0; fi
    exit 1
fi

if [ "$cmd" = stop ]; then
    if ! pid=$(our_pid); then
        log "no dockerd of ours is running for $DIR"
        exit 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops its containers (10 s grace each) and its containerd before exiting.
    for _ in $(seq 1 60); do
        alive "$pid" || { release_data_root; log "stopped"; exit 0; }
        sleep 0.5
    done
    log "dockerd (pid $pid) still running after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
    release_data_root
    clear_stale_containerd
    exit 0
fi

# ---- start ---------------------------------------------------------------------------------
if answering; then
    log "already answering on $HOST"
    echo "$HOST"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "dockerd must be started as root (run this script as root)"
mkdir -p "$DIR/data" "$DIR/exec"

# 1. Packages. Debian's docker.io brings dockerd, containerd, runc, tini (docker-init) and the
#    CLI; it hard-depends on iptables too, which is installed but never used (--iptables=false).
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v docker-init >/dev/null 2>&1 || missing+=(tini)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    # The package's postinst would start the system docker service (default bridge, iptables):
    # forbid service starts during the install unless a policy already does.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    trap 'if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
    apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed (trying the install anyway)"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1 \
        || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; made_policy=; fi
fi
command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH (docker.io ships /usr/bin/docker)"

# 2. cgroups: dockerd needs a mounted cgroup hierarchy (v1 or v2) to apply limits.
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/memory ]; then
    log "no cgroup hierarchy mounted on /sys/fs/cgroup; mounting cgroup2"
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || die "cannot mount cgroup2 on /sys/fs/cgroup"
fi

# 3. A dockerd of ours that runs but does not answer (still starting, or wedged).
if pid=$(our_pid); then
    log "dockerd (pid $pid) is running but not answering yet; waiting for it"
else
    # 4. Storage driver.
    driver=${GRID_DOCKER_STORAGE_DRIVER:-}
    if [ -z "$driver" ] && [ -s "$DIR/storage-driver" ]; then
        driver=$(cat "$DIR/storage-driver")
    fi
    if [ -z "$driver" ]; then
        probe=$(mktemp -d "$DIR/overlay-probe.XXXXXX")
        mkdir -p "$probe/l" "$probe/u" "$probe/w" "$probe/m"
        if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" \
                "$probe/m" 2>/dev/null; then
            umount "$probe/m"
            driver=overlay2
        else
            log "overlayfs cannot be mounted on $DIR's filesystem; using the vfs storage driver"
            driver=vfs
        fi
        rm -rf "$probe"
    fi
    # Leftovers of a dockerd that died without cleaning up.
    release_data_root
    clear_stale_containerd

    args=(
        --iptables=false --ip-forward=false --ip-masq=false --bridge=none
        --data-root "$DIR/data" --exec-root "$DIR/exec"
        --pidfile "$PIDFILE" --host "$HOST"
        --storage-driver "$driver"
        --log-level "${GRID_DOCKER_LOG_LEVEL:-info}"
    )
    rm -f "$PIDFILE"   # a stale pidfile of a dead dockerd (checked above) would stop the start
    log "starting dockerd (storage driver $driver, log $LOGFILE)"
    echo "=== $(date -u +%FT%TZ) dockerd ${args[*]}" >> "$LOGFILE"
    # setsid + nohup: dockerd outlives this script and the shell or CI step that ran it.
    setsid nohup dockerd "${args[@]}" >>"$LOGFILE" 2>&1 </dev/null &
    pid=$!
fi

# 5. Wait for the API.
deadline=$((SECONDS + TIMEOUT))
until answering; do
    if ! alive "$pid"; then
        log "dockerd exited during start; last lines of $LOGFILE:"
        log_tail
        release_data_root
        exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
        log "dockerd (pid $pid) did not answer on $HOST within ${TIMEOUT}s; last lines of $LOGFILE:"
        log_tail
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.3
done
[ -z "${driver:-}" ] || echo "$driver" > "$DIR/storage-driver"
log "dockerd (pid $pid) answering on $HOST"
echo "$HOST"
