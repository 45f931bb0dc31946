# Shared shell of scripts/build_images.sh and scripts/build_test_images.sh (sourced, not run):
# the Docker engine, Debian root filesystems made with debootstrap, and `docker build`.
#
# The sourcing script sets IMAGES_WHO (its name, for log lines) first; this file sets CACHE
# ($GRID_IMAGE_CACHE, default /var/cache/gridmarket-images), ARCH, SUITE ($GRID_DEBIAN_SUITE,
# default this machine's codename, else bookworm) and IMAGE_PATH (the images' PATH).

log() { echo "$IMAGES_WHO: $*" >&2; }
die() { log "error: $*"; exit 1; }

CACHE=${GRID_IMAGE_CACHE:-/var/cache/gridmarket-images}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
SUITE=${GRID_DEBIAN_SUITE:-$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-bookworm}")}
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---- the engine ------------------------------------------------------------------------------
connect_engine() {  # DOCKER_HOST, else scripts/docker_engine.sh's engine; dies if it does not answer
    local scripts
    scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [ -z "${DOCKER_HOST:-}" ]; then
        DOCKER_HOST=$("$scripts/docker_engine.sh" status 2>/dev/null) \
            || die "no Docker engine: set DOCKER_HOST or run scripts/docker_engine.sh first"
    fi
    export DOCKER_HOST
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
        || die "the Docker engine at $DOCKER_HOST does not answer"
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

image_label() {  # image_label IMAGE LABEL: the label's value ("" without one)
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1"
}

# docker_build IMAGE [docker build arguments...]: the legacy builder with no network (BuildKit's
# RUN needs a bridge network the engines here lack, and it never looks for a registry when FROM
# is local); the image it replaces, now untagged, is removed (kept if a container still uses it).
docker_build() {
    local image=$1 out old new
    shift
    old=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    if ! out=$(DOCKER_BUILDKIT=0 docker build --quiet --network none -t "$image" "$@" 2>&1); then
        echo "$out" >&2
        die "docker build of $image failed"
    fi
    new=$(docker image inspect --format '{{.Id}}' "$image")
    if [ -n "$old" ] && [ "$old" != "$new" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
}

# ---- Debian root filesystems -----------------------------------------------------------------
apt_install() {  # install Debian packages that are missing on the host
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -gt 0 ] || return 0
    log "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
}

# The Debian mirror apt uses here: the first source that serves $SUITE itself (not -security or
# -updates), from deb822 files (URIs:/Suites:) or one-line `deb URL SUITE ...` lists.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        case "$f" in *.sources)
            awk -v suite="$SUITE" '
                function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && (" " suites " ") ~ (" " suite " ")) { split(uris, u, " "); print u[1]; exit } types=uris=suites=enabled="" }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { key=tolower($1); sub(/:$/, "", key); $1=""; sub(/^ +/, "");
                  if (key=="types") types=$0; else if (key=="uris") uris=$0;
                  else if (key=="suites") suites=$0; else if (key=="enabled") enabled=tolower($0) }
                END { flush() }' "$f" ;;
        *)
            awk -v suite="$SUITE" '
                $1=="deb" { i=2; if ($2 ~ /^\[/) { while (i<=NF && $i !~ /\]$/) i++; i++ }
                            if ($(i+1)==suite) { print $i; exit } }' "$f" ;;
        esac
    done | head -n 1
}

# debootstrap_minbase NAME PACKAGES ROOTFS LOG: `debootstrap --variant=minbase --include=PACKAGES`
# of $SUITE into ROOTFS from $GRID_DEBIAN_MIRROR or apt's own mirror (through apt's proxy, if
# any), then trimmed (apt caches and lists, docs, logs); on failure the logs' tails and a death.
debootstrap_minbase() {
    local name=$1 include=$2 rootfs=$3 logfile=$4 mirror proxy
    apt_install debootstrap debian-archive-keyring
    mirror=${GRID_DEBIAN_MIRROR:-$(debian_mirror)}
    [ -n "$mirror" ] || die "found no Debian mirror for $SUITE in /etc/apt/sources*; set GRID_DEBIAN_MIRROR"
    if [ -z "${http_proxy:-}" ]; then  # apt's own proxy setting, if any, for debootstrap's wget
        proxy=$(apt-config shell P Acquire::http::Proxy 2>/dev/null | sed -n "s/^P='\(.*\)'$/\1/p")
        [ -z "$proxy" ] || export http_proxy=$proxy
    fi
    log "$name: debootstrap --variant=minbase --include=$include $SUITE from $mirror (a minute or two; log $logfile)"
    if ! debootstrap --variant=minbase --include="$include" --arch="$ARCH" \
            --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
            "$SUITE" "$rootfs" "$mirror" >"$logfile" 2>&1; then
        tail -n 20 "$logfile" >&2
        [ ! -f "$rootfs/debootstrap/debootstrap.log" ] || tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2
        rm -rf "$(dirname "$rootfs")"
        die "debootstrap of $name failed"
    fi
    (
        cd "$rootfs"
        rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
            usr/share/doc/* usr/share/man/* usr/share/info/* var/log/* 2>/dev/null || true
        chmod 1777 tmp
    )
}

pack_rootfs() {  # pack_rootfs ROOTFS TAR: the tarball docker import takes (/dev, /proc, /sys: the engine's)
    tar -C "$1" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$2.tmp" .
    mv "$2.tmp" "$2"
}
