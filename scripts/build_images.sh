#!/usr/bin/env bash
# Build the images the compose files run (compose/README.md, docs/operators/):
#
#   gridmarket/base:latest      Debian (debootstrap minbase) with python3, python3-venv, ca-certificates
#   gridmarket/app:latest       the Gridmarket roles (facilitator, validator, dashboard, miner, celery),
#                               `docker build` of compose/app/Dockerfile on BASE_IMAGE + host-built wheels
#   gridmarket/postgres:latest  Debian's postgresql, compatible with the official image's variables
#   gridmarket/redis:latest     Debian's redis-server
#
#   scripts/build_images.sh [--force] [base|wheels|app|postgres|redis ...]   (default: all; app
#                                                                            builds the wheels first)
#
# No registry is needed: base, postgres and redis are `docker import`s of debootstrap'ed root
# filesystems (packages installed at debootstrap time), and the Dockerfiles' builds run with
# `--network none` on the legacy builder. The project's wheels are built on the host with
# `pip wheel` (this project, its dependencies and psycopg[binary], the PostgreSQL driver) into
# compose/wheels/, which the app build copies in.
#
# BASE_IMAGE=python:3.11-slim (any image with python3 and the venv module, the same Python
# minor version as the host's, whose wheels are built) uses a registry image instead of
# gridmarket/base; gridmarket/base is then not built. POSTGRES_IMAGE / REDIS_IMAGE in the
# compose files do the same for the databases (the official postgres and redis images work).
#
# Images present are skipped unless --force; gridmarket/app is rebuilt whenever its sources
# (the project's tracked files, compose/app/, the wheels' list, the base image) changed: it
# carries their sha256 as a label. Rootfs tarballs are cached in $GRID_IMAGE_CACHE (default
# /var/cache/gridmarket-images). The engine is $DOCKER_HOST, else scripts/docker_engine.sh's.
# Must run as root for debootstrap. Environment: BASE_IMAGE, GRID_IMAGE_CACHE, GRID_DEBIAN_MIRROR,
# GRID_DEBIAN_SUITE (default: this machine's codename, else bookworm), PYTHON (for pip wheel;
# default .venv/bin/python, else python3), GRID_EXTRA_WHEELS (more requirements for the image).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
IMAGES_WHO=build_images
# shellcheck source=scripts/lib/images.sh
. "$here/lib/images.sh"

force=
want=()
for a in "$@"; do
    case "$a" in
        --force|-f) force=1 ;;
        base|wheels|app|postgres|redis) want+=("$a") ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) die "unknown argument: $a (expected --force, base, wheels, app, postgres, redis)" ;;
    esac
done
[ ${#want[@]} -gt 0 ] || want=(base app postgres redis)  # app builds the wheels
has() { [[ " ${want[*]} " == *" $1 "* ]]; }

WHEELS=$root/compose/wheels
# The PostgreSQL driver (not a dependency of the package: the embedded grid runs on SQLite), and
# async-timeout, which redis needs on Python < 3.11.3 (Debian bookworm's 3.11.2) and pip leaves
# out when the host's Python is newer.
EXTRA_WHEELS=("psycopg[binary]>=3.1" "async-timeout>=4.0.3" ${GRID_EXTRA_WHEELS:-})
APP_LABEL=org.gridmarket.app-source
if [ -n "${PYTHON:-}" ]; then :; elif [ -x "$root/.venv/bin/python" ]; then PYTHON=$root/.venv/bin/python; else PYTHON=python3; fi

connect_engine

# ---- Debian root filesystems -----------------------------------------------------------------
# rootfs NAME PACKAGES: a cached tarball of `debootstrap --variant=minbase --include=PACKAGES`.
rootfs() {
    local name=$1 include=$2 tar="$CACHE/gridmarket-$1-$SUITE-$ARCH.tar" work
    if [ -s "$tar" ] && [ -z "$force" ]; then
        log "$name: using cached rootfs $tar"
        echo "$tar"
        return
    fi
    [ "$(id -u)" = 0 ] || die "debootstrap must run as root"
    work=$(mktemp -d "$CACHE/$name.XXXXXX")
    debootstrap_minbase "$name" "$include" "$work/rootfs" "$CACHE/$name-debootstrap.log"
    # Debian's postgresql package creates a cluster of its own: the image makes its own at first start.
    rm -rf "$work/rootfs"/var/lib/postgresql/*/main "$work/rootfs"/etc/postgresql/*/main 2>/dev/null || true
    pack_rootfs "$work/rootfs" "$tar"
    rm -rf "$work"
    log "$name: rootfs cached in $tar ($(du -h "$tar" | cut -f1))"
    echo "$tar"
}

import_rootfs() {  # import_rootfs NAME TAR IMAGE [--change ...]
    local name=$1 tar=$2 image=$3
    shift 3
    docker import --change "ENV PATH=$IMAGE_PATH" --change 'ENV LANG=C.UTF-8' "$@" \
        --message "gridmarket $name: Debian $SUITE minbase" - "$image" < "$tar" >/dev/null \
        || die "docker import of $image failed"
}

build_base() {
    local t0=$SECONDS tar
    tar=$(rootfs base python3,python3-venv,ca-certificates)
    import_rootfs base "$tar" gridmarket/base:latest --change 'CMD ["python3"]' \
        --change 'LABEL org.gridmarket.image=base'
    log "base: gridmarket/base:latest built in $((SECONDS - t0))s"
}

# A Debian rootfs imported as an intermediate image, then `docker build` of compose/NAME/ on it
# (its Dockerfile adds the entrypoint and metadata, so the same files serve with any base).
build_service() {
    local name=$1 packages=$2 t0=$SECONDS tar
    tar=$(rootfs "$name" "$packages")
    import_rootfs "$name" "$tar" "gridmarket/$name-rootfs:latest"
    log "$name: docker build of compose/$name/"
    docker_build "gridmarket/$name:latest" --force-rm "$root/compose/$name"
    log "$name: gridmarket/$name:latest built in $((SECONDS - t0))s"
}

build_wheels() {
    local t0=$SECONDS
    mkdir -p "$WHEELS"
    log "wheels: $PYTHON -m pip wheel . ${EXTRA_WHEELS[*]} → compose/wheels/ (PyPI, on the host)"
    # The project's own wheel is rebuilt every time (its version does not change with its code).
    rm -f "$WHEELS"/gridmarket-*.whl
    # (pip's warnings about find-links of this machine's own configuration are left out)
    # The project is built from a copy of its tracked files (as they are in the work tree), so
    # that nothing untracked (.grid/, test artifacts) can slip into the image; the MANIFEST.in
    # grafts the packages whole, whatever pyproject.toml's package data misses.
    local out rc=0 src
    src=$(mktemp -d)
    (cd "$root" && git ls-files -z | tar --null -T - -cf - 2>/dev/null) | tar -x -C "$src" \
        || { rm -rf "$src"; die "could not copy the project's tracked files"; }
    {
        for pkg in grid node protocol facilitator validator miner executor facilitator_sdk; do echo "graft $pkg"; done
        echo "global-exclude *.py[cod] __pycache__"
    } > "$src/MANIFEST.in"
    out=$("$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELS" "$src" "${EXTRA_WHEELS[@]}" 2>&1) || rc=$?
    rm -rf "$src"
    grep -v "is ignored: it is neither a file nor a directory" <<<"$out" >&2 || true
    [ "$rc" = 0 ] || die "pip wheel failed (PyPI must be reachable from the host)"
    # What the app image installs: the project with its dependencies, and the extras.
    printf '%s\n' gridmarket "${EXTRA_WHEELS[@]}" > "$WHEELS/requirements.txt"
    log "wheels: $(ls "$WHEELS"/*.whl | wc -l) wheels in $((SECONDS - t0))s"
}

app_source() {  # what gridmarket/app is built from, hashed
    {
        (cd "$root" && git ls-files -z -- pyproject.toml grid node protocol facilitator validator miner executor \
            facilitator_sdk compose/app | xargs -0 sha256sum)
        cat "$WHEELS/requirements.txt" 2>/dev/null
        docker image inspect --format '{{.Id}}' "$BASE" 2>/dev/null
    } | sha256sum | cut -d' ' -f1
}

build_app() {
    local t0=$SECONDS src pyhost pybase
    has wheels || build_wheels  # the project's wheel must be of the code being built
    have_image "$BASE" || die "no base image $BASE (build it with scripts/build_images.sh base, or pull it)"
    # Wheels with compiled code are built for the host's Python: the base must have the same one.
    pyhost=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    pybase=$(docker run --rm --network none --entrypoint python3 "$BASE" \
        -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "no python3 in $BASE"
    [ "$pyhost" = "$pybase" ] \
        || die "$BASE has Python $pybase but the wheels are for $pyhost ($PYTHON): use a base with Python $pyhost or PYTHON=python$pybase"
    src=$(app_source)
    log "app: docker build of compose/app/Dockerfile FROM $BASE (network none)"
    docker_build gridmarket/app:latest --force-rm --build-arg "BASE_IMAGE=$BASE" \
        --label "$APP_LABEL=$src" -f "$root/compose/app/Dockerfile" "$root/compose"
    log "app: gridmarket/app:latest built in $((SECONDS - t0))s (source ${src:0:12})"
}

BASE=${BASE_IMAGE:-gridmarket/base:latest}
mkdir -p "$CACHE"
exec 9>"$CACHE/.build-images.lock"
flock 9

if has base; then
    if [ -n "${BASE_IMAGE:-}" ]; then
        log "base: BASE_IMAGE=$BASE_IMAGE, gridmarket/base not needed"
    elif [ -z "$force" ] && have_image gridmarket/base:latest; then
        log "base: gridmarket/base:latest present, skipped"
    else
        build_base
    fi
fi
if has wheels; then build_wheels; fi
if has app; then
    if [ -z "$force" ] && have_image gridmarket/app:latest \
            && [ "$(image_label gridmarket/app:latest "$APP_LABEL")" = "$(app_source)" ]; then
        log "app: gridmarket/app:latest up to date, skipped"
    else
        build_app
    fi
fi
if has postgres; then
    if [ -z "$force" ] && have_image gridmarket/postgres:latest; then
        log "postgres: gridmarket/postgres:latest present, skipped"
    else
        build_service postgres postgresql,ca-certificates
    fi
fi
if has redis; then
    if [ -z "$force" ] && have_image gridmarket/redis:latest; then
        log "redis: gridmarket/redis:latest present, skipped"
    else
        build_service redis redis-server
    fi
fi
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' 'gridmarket/*' >&2
