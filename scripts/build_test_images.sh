#!/usr/bin/env bash
# Build the local job images the docker tests use (there is no image registry here; docs/docker.md):
#
#   gridtest/busybox:latest  Debian's busybox-static: /bin/busybox and its applet symlinks (~2 MB)
#   gridtest/python:latest   a debootstrap'ed Debian (minbase) rootfs with python3 (~150 MB)
#   gridtest/streaming:latest  examples/streaming_echo (a sample streaming job) on gridtest/python
#
# The first two are made with `docker import` of a rootfs tarball, so nothing but Debian's apt
# mirror is needed: the busybox .deb comes through `apt-get download`, the python rootfs from
# `debootstrap` against the same mirror apt on this machine uses (read from /etc/apt/sources*).
# The streaming image is a `docker build` of examples/streaming_echo/Dockerfile FROM the local
# gridtest/python (legacy builder: BuildKit's RUN needs a bridge network this engine lacks).
#
#   scripts/build_test_images.sh [--force] [busybox|python|streaming ...]
#
# Images already present are skipped (a second run takes well under a second); --force rebuilds.
# The streaming image is also rebuilt when it is out of date: it carries a label with the sha256
# of the example's files and of gridtest/python's image id, compared on every run.
# The rootfs tarballs are kept in $GRID_IMAGE_CACHE (default /var/cache/gridmarket-images), so a
# rebuild after `docker rmi` only re-imports (seconds); delete that directory to start over.
# The engine is $DOCKER_HOST, else the one scripts/docker_engine.sh runs. Must run as root
# (debootstrap). Environment: GRID_IMAGE_CACHE, GRID_DEBIAN_MIRROR (override the mirror),
# GRID_DEBIAN_SUITE (default: this machine's codename, else bookworm).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
log() { echo "build_test_images: $*" >&2; }
die() { log "error: $*"; exit 1; }

force=
want=()
for a in "$@"; do
    case "$a" in
        --force|-f) force=1 ;;
        busybox|python|streaming) want+=("$a") ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
    esac
done
[ ${#want[@]} -gt 0 ] || want=(busybox python streaming)

CACHE=${GRID_IMAGE_CACHE:-/var/cache/gridmarket-images}
ARCH=$(dpkg --print-architecture)
SUITE=${GRID_DEBIAN_SUITE:-$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-bookworm}")}
PY_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STREAMING_DIR=$(cd "$here/../examples/streaming_echo" && pwd)
STREAMING_LABEL=org.gridmarket.streaming-source

# ---- the engine ------------------------------------------------------------------------------
if [ -z "${DOCKER_HOST:-}" ]; then
    DOCKER_HOST=$("$here/docker_engine.sh" status 2>/dev/null) \
        || die "no Docker engine: set DOCKER_HOST or run scripts/docker_engine.sh first"
fi
export DOCKER_HOST
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "the Docker engine at $DOCKER_HOST does not answer"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# What gridtest/streaming is built from: the example's files (sorted, __pycache__ left out) and
# the image id of gridtest/python, hashed together.
streaming_source() {
    {
        (cd "$STREAMING_DIR" && find . -type f ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum)
        docker image inspect --format '{{.Id}}' gridtest/python:latest
    } | sha256sum | cut -d' ' -f1
}

todo=()
for name in "${want[@]}"; do
    if [ "$name" = streaming ] && [ -z "$force" ] && have_image gridtest/streaming:latest; then
        if [[ " ${todo[*]} " != *" python "* ]] && have_image gridtest/python:latest \
                && [ "$(docker image inspect --format "{{ index .Config.Labels \"$STREAMING_LABEL\" }}" \
                        gridtest/streaming:latest)" = "$(streaming_source)" ]; then
            log "gridtest/streaming:latest up to date, skipped"
        else
            log "gridtest/streaming:latest out of date (examples/streaming_echo or gridtest/python changed)"
            todo+=(streaming)
        fi
    elif [ -z "$force" ] && have_image "gridtest/$name:latest"; then
        log "gridtest/$name:latest present, skipped"
    else
        todo+=("$name")
    fi
done
# gridtest/streaming is built FROM gridtest/python: build that first when it is missing.
if [[ " ${todo[*]} " == *" streaming "* ]] && [[ " ${todo[*]} " != *" python "* ]] \
        && ! have_image gridtest/python:latest; then
    log "gridtest/streaming:latest needs gridtest/python:latest, which is missing: building it first"
    todo=(python "${todo[@]}")
fi
[ ${#todo[@]} -gt 0 ] || exit 0

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, device nodes in the rootfs)"
mkdir -p "$CACHE"
# One builder at a time per cache (parallel test setups wait for each other).
exec 9>"$CACHE/.lock"
flock 9

apt_install() {  # install Debian packages that are missing
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

# ---- busybox ---------------------------------------------------------------------------------
build_busybox() {
    local t0=$SECONDS tar="$CACHE/busybox-$ARCH.tar" work deb ver
    if [ ! -s "$tar" ]; then
        work=$(mktemp -d "$CACHE/busybox.XXXXXX")
        log "busybox: downloading busybox-static (apt-get download)"
        ( cd "$work" && { apt-get download busybox-static >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1; apt-get download busybox-static >/dev/null; }; } ) \
            || die "apt-get download busybox-static failed"
        deb=$(ls "$work"/busybox-static_*.deb)
        mkdir "$work/rootfs"
        dpkg-deb -x "$deb" "$work/rootfs"
        rm -rf "$work/rootfs/usr/share"
        ver=$(dpkg-deb -f "$deb" Version)
        log "busybox: rootfs with busybox-static $ver and its applet links"
        (
            cd "$work/rootfs"
            # busybox is static: it runs here to list its own applets (bin/sh, usr/bin/awk, ...).
            for p in $(./bin/busybox --list-full); do
                [ -e "$p" ] && continue
                mkdir -p "$(dirname "$p")"
                ln -s /bin/busybox "$p"
            done
            mkdir -p etc tmp root output volume proc sys dev
            chmod 1777 tmp
            printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
            printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
            echo "$ver" > etc/busybox-version
        )
        tar -C "$work/rootfs" --numeric-owner -cf "$tar.tmp" .
        mv "$tar.tmp" "$tar"
        rm -rf "$work"
    else
        log "busybox: using cached rootfs $tar"
    fi
    ver=$(tar -xOf "$tar" ./etc/busybox-version)
    docker import \
        --change "ENV PATH=$PY_PATH" \
        --change 'CMD ["/bin/sh"]' \
        --change "LABEL org.gridmarket.test-image=busybox org.gridmarket.busybox-version=$ver" \
        --message "gridtest busybox from Debian busybox-static $ver" \
        - gridtest/busybox:latest < "$tar" >/dev/null
    log "busybox: gridtest/busybox:latest built in $((SECONDS - t0))s"
}

# ---- python ----------------------------------------------------------------------------------
build_python() {
    local t0=$SECONDS tar="$CACHE/python-$SUITE-$ARCH-minbase.tar" work mirror keyring pyver
    if [ ! -s "$tar" ]; then
        apt_install debootstrap debian-archive-keyring
        mirror=${GRID_DEBIAN_MIRROR:-$(debian_mirror)}
        [ -n "$mirror" ] || die "found no Debian mirror for $SUITE in /etc/apt/sources*; set GRID_DEBIAN_MIRROR"
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        # apt's own proxy setting, if any, for debootstrap's wget.
        if [ -z "${http_proxy:-}" ]; then
            proxy=$(apt-config shell P Acquire::http::Proxy 2>/dev/null | sed -n "s/^P='\(.*\)'$/\1/p")
            [ -z "$proxy" ] || export http_proxy=$proxy
        fi
        work=$(mktemp -d "$CACHE/python.XXXXXX")
        log "python: debootstrap --variant=minbase --include=python3 $SUITE from $mirror (about a minute; log $CACHE/debootstrap.log)"
        if ! debootstrap --variant=minbase --include=python3 --arch="$ARCH" --keyring="$keyring" \
                "$SUITE" "$work/rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
            tail -n 20 "$CACHE/debootstrap.log" >&2
            [ ! -f "$work/rootfs/debootstrap/debootstrap.log" ] || tail -n 20 "$work/rootfs/debootstrap/debootstrap.log" >&2
            rm -rf "$work"
            die "debootstrap failed"
        fi
        log "python: trimming and packing the rootfs"
        (
            cd "$work/rootfs"
            rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
                usr/share/doc/* usr/share/man/* usr/share/info/* var/log/* 2>/dev/null || true
            mkdir -p output volume
            chmod 1777 tmp
        )
        pyver=$(chroot "$work/rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
        echo "$pyver" > "$work/rootfs/etc/gridtest-python-version"
        # /dev, /proc and /sys are provided by the engine at run time.
        tar -C "$work/rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' \
            --exclude='./sys/*' -cf "$tar.tmp" .
        mv "$tar.tmp" "$tar"
        rm -rf "$work"
        log "python: rootfs cached in $tar ($(du -h "$tar" | cut -f1))"
    else
        log "python: using cached rootfs $tar"
    fi
    pyver=$(tar -xOf "$tar" ./etc/gridtest-python-version)
    docker import \
        --change "ENV PATH=$PY_PATH" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change "LABEL org.gridmarket.test-image=python org.gridmarket.python-version=$pyver" \
        --message "gridtest python: Debian $SUITE minbase with python3 $pyver" \
        - gridtest/python:latest < "$tar" >/dev/null
    log "python: gridtest/python:latest built in $((SECONDS - t0))s (python $pyver)"
}

# ---- streaming -------------------------------------------------------------------------------
build_streaming() {
    local t0=$SECONDS src out old new
    src=$(streaming_source)
    old=$(docker image inspect --format '{{.Id}}' gridtest/streaming:latest 2>/dev/null || true)
    log "streaming: docker build of $STREAMING_DIR (FROM gridtest/python:latest)"
    # DOCKER_BUILDKIT=0: the legacy builder works with both CLIs here (Debian's 20.10 and the
    # machine's 28.x, which has no buildx) and never looks for a registry when FROM is local.
    if ! out=$(DOCKER_BUILDKIT=0 docker build --quiet --network none \
            --label "org.gridmarket.test-image=streaming" --label "$STREAMING_LABEL=$src" \
            -t gridtest/streaming:latest "$STREAMING_DIR" 2>&1); then
        echo "$out" >&2
        die "docker build of gridtest/streaming:latest failed"
    fi
    # The previous build, now untagged (kept if a container still uses it).
    new=$(docker image inspect --format '{{.Id}}' gridtest/streaming:latest)
    if [ -n "$old" ] && [ "$old" != "$new" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
    log "streaming: gridtest/streaming:latest built in $((SECONDS - t0))s (source ${src:0:12})"
}

for name in "${todo[@]}"; do
    "build_$name"
done
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' 'gridtest/*' >&2
