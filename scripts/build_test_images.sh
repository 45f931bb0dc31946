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
IMAGES_WHO=build_test_images
# shellcheck source=scripts/lib/images.sh
. "$here/lib/images.sh"

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

STREAMING_DIR=$(cd "$here/../examples/streaming_echo" && pwd)
STREAMING_LABEL=org.gridmarket.streaming-source

connect_engine

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
                && [ "$(image_label gridtest/streaming:latest "$STREAMING_LABEL")" = "$(streaming_source)" ]; then
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
        --change "ENV PATH=$IMAGE_PATH" \
        --change 'CMD ["/bin/sh"]' \
        --change "LABEL org.gridmarket.test-image=busybox org.gridmarket.busybox-version=$ver" \
        --message "gridtest busybox from Debian busybox-static $ver" \
        - gridtest/busybox:latest < "$tar" >/dev/null
    log "busybox: gridtest/busybox:latest built in $((SECONDS - t0))s"
}

# ---- python ----------------------------------------------------------------------------------
build_python() {
    local t0=$SECONDS tar="$CACHE/python-$SUITE-$ARCH-minbase.tar" work pyver
    if [ ! -s "$tar" ]; then
        work=$(mktemp -d "$CACHE/python.XXXXXX")
        debootstrap_minbase python python3 "$work/rootfs" "$CACHE/debootstrap.log"
        mkdir -p "$work/rootfs/output" "$work/rootfs/volume"
        pyver=$(chroot "$work/rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
        echo "$pyver" > "$work/rootfs/etc/gridtest-python-version"
        pack_rootfs "$work/rootfs" "$tar"
        rm -rf "$work"
        log "python: rootfs cached in $tar ($(du -h "$tar" | cut -f1))"
    else
        log "python: using cached rootfs $tar"
    fi
    pyver=$(tar -xOf "$tar" ./etc/gridtest-python-version)
    docker import \
        --change "ENV PATH=$IMAGE_PATH" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change "LABEL org.gridmarket.test-image=python org.gridmarket.python-version=$pyver" \
        --message "gridtest python: Debian $SUITE minbase with python3 $pyver" \
        - gridtest/python:latest < "$tar" >/dev/null
    log "python: gridtest/python:latest built in $((SECONDS - t0))s (python $pyver)"
}

# ---- streaming -------------------------------------------------------------------------------
build_streaming() {
    local t0=$SECONDS src
    src=$(streaming_source)
    log "streaming: docker build of $STREAMING_DIR (FROM gridtest/python:latest)"
    docker_build gridtest/streaming:latest --label "org.gridmarket.test-image=streaming" \
        --label "$STREAMING_LABEL=$src" "$STREAMING_DIR"
    log "streaming: gridtest/streaming:latest built in $((SECONDS - t0))s (source ${src:0:12})"
}

for name in "${todo[@]}"; do
    "build_$name"
done
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' 'gridtest/*' >&2
