#!/usr/bin/env bash
# Build the container image and the team stack, run them, and check what a user relies on. Made for machines with
# no Docker engine and no registry: podman, runc and debootstrap come from Debian packages, every image is built
# on a Debian base made here with debootstrap, and every container uses host networking on loopback ports.
#
#   deploy/verify-image.sh           # ~7 min the first time (base images), ~2 min after
#   deploy/verify-image.sh --clean   # first remove this script's images and wheel cache, then build everything
#
# Exit status: 0 every check passed; 1 a check failed (the output says which); 77 podman cannot run containers on
# this machine (the reason is printed): a skip, not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SKIP=77
START=$SECONDS

# podman runs rootful here (rootless podman would keep images per user, and debootstrap needs root anyway)
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null && exec sudo -n "$0" "$@"
    echo "verify-image: SKIP: needs root or passwordless sudo (podman runs rootful here)"
    exit $SKIP
fi

MIN_IMAGE=localhost/acedata-verify-bookworm:minbase
PY_IMAGE=localhost/acedata-verify-python:bookworm
IMAGE=localhost/acedata-proxy:verify
REDIS_IMAGE=localhost/acedata-verify-redis:bookworm
NGINX_IMAGE=localhost/acedata-verify-nginx:bookworm
PROMETHEUS_IMAGE=localhost/acedata-verify-prometheus:bookworm
OUR_IMAGES=("$IMAGE" "$REDIS_IMAGE" "$NGINX_IMAGE" "$PROMETHEUS_IMAGE" "$PY_IMAGE" "$MIN_IMAGE")
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/acedata-proxy-verify
NAME=acedata-verify-$$
WORK=$(mktemp -d /tmp/acedata-verify.XXXXXX)

say() { printf '%s\n' "verify-image: $*"; }
skip() { say "SKIP: $*"; exit $SKIP; }

# podman 4.3 picks crun, which refuses these cgroups; runc needs explicit rlimits; only host networking works.
# A containers.conf of our own (CONTAINERS_CONF replaces the system's) says so once, for podman-compose too.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$WORK/containers.conf

cleanup() {
    for container in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^$NAME" || true); do
        podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
    done
    podman volume rm -f "$NAME-team_prometheus-data" >/dev/null 2>&1 || true  # the team stack's, if it was cut
    rm -rf "$WORK"
}
trap cleanup EXIT

install_packages() {
    local missing=()
    for pkg in podman runc debootstrap; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || skip "no apt-get to install ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq || skip "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || skip "apt-get could not install ${missing[*]}"
}

have_image() { podman image exists "$1"; }

build_bases() {
    if ! have_image "$MIN_IMAGE"; then
        say "debootstrap --variant=minbase bookworm (about a minute)"
        debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -5 "$WORK/debootstrap.log"; say "debootstrap failed"; exit 1; }
        # what debootstrap leaves behind and no container needs: downloaded packages, indexes, docs, translations
        rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/* \
            "$WORK"/rootfs/usr/share/{doc,man,info,locale}/*
        tar -C "$WORK/rootfs" -c . | podman import -q - "$MIN_IMAGE" >/dev/null
        rm -rf "$WORK/rootfs"
    fi
    podman run --rm --name "$NAME-probe" "$MIN_IMAGE" true 2>"$WORK/probe.err" \
        || skip "podman cannot run a container here: $(tail -1 "$WORK/probe.err")"
    debian_image "$PY_IMAGE" "python3 python3-venv"
}

debian_image() {  # debian_image NAME "PACKAGES": the minimal base plus Debian packages
    have_image "$1" && return 0
    say "building $1 (Debian: $2)"
    podman build -q --format docker --pull=never --network host -f deploy/image/debian.Containerfile \
        --build-arg BASE_IMAGE="$MIN_IMAGE" --build-arg PACKAGES="$2" -t "$1" deploy/image >/dev/null
}

# Wheels for the image's Python, fetched by the base image's own pip (its markers are those of its Python), so
# the project's image then builds offline. The host's CA bundle lets pip through a proxy that re-signs TLS.
fill_wheelhouse() {
    WHEELS=$CACHE/wheels-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
    [ -d "$WHEELS" ] && return 0
    say "filling the wheelhouse $WHEELS"
    mkdir -p "$WORK/src" "$WHEELS.tmp"
    cp -r pyproject.toml constraints.txt README.md app "$WORK/src/"
    podman run --rm --name "$NAME-wheels" -v /etc/ssl/certs/ca-certificates.crt:/run/ca.crt:ro \
        -e PIP_CERT=/run/ca.crt -v "$WORK/src:/src" -v "$WHEELS.tmp:/wheels" "$PY_IMAGE" sh -c \
        'python3 -m venv /tmp/venv && /tmp/venv/bin/pip -q --disable-pip-version-check wheel -w /wheels \
         -c /src/constraints.txt /src "setuptools>=68"' >/dev/null
    rm -f "$WHEELS.tmp"/acedata_proxy-*
    mv "$WHEELS.tmp" "$WHEELS"
}

build_image() {
    say "building $IMAGE on $PY_IMAGE"
    local previous
    previous=$(podman image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)
    # --layers=false: no image of the build stage is left behind, only the final one
    podman build -q --layers=false --format docker --pull=never --network host -v "$WHEELS:/wheels:ro" \
        --build-arg BASE_IMAGE="$PY_IMAGE" --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels \
        -t "$IMAGE" . >/dev/null
    # the image this build replaced, now nameless (kept if it is still the same image, or used elsewhere)
    [ -n "$previous" ] && [ "$(podman image inspect "$IMAGE" --format '{{.Id}}')" != "$previous" ] \
        && { podman rmi "$previous" >/dev/null 2>&1 || true; }
    local size user check
    size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
    user=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
    check=$(podman image inspect "$IMAGE" --format '{{json .HealthCheck.Test}}')
    say "image $IMAGE: $((size / 1000000)) MB (base $PY_IMAGE: $(($(podman image inspect "$PY_IMAGE" \
        --format '{{.Size}}') / 1000000)) MB), user $user, health check $check"
    [[ $user == 10001:10001 ]] || { say "FAIL: the image's user is '$user', not 10001:10001"; exit 1; }
    [[ $check == *app.serving.healthcheck* ]] || { say "FAIL: the image has no HEALTHCHECK: $check"; exit 1; }
}

main() {
    install_packages
    command -v podman >/dev/null || skip "podman is not installed"
    podman info >/dev/null 2>"$WORK/info.err" || skip "podman does not work here: $(tail -1 "$WORK/info.err")"
    scripts/bootstrap  # the host side of the checks (fake upstream, OpenAI SDK) runs from .venv
    PY=$ROOT/.venv/bin/python
    if [ "${1:-}" = --clean ]; then
        say "removing this script's images and wheel cache"
        for image in "${OUR_IMAGES[@]}"; do podman rmi -f "$image" >/dev/null 2>&1 || true; done
        rm -rf "$CACHE"
    fi
    build_bases
    fill_wheelhouse
    build_image
    debian_image "$REDIS_IMAGE" redis-server
    debian_image "$NGINX_IMAGE" nginx-light
    debian_image "$PROMETHEUS_IMAGE" prometheus
    say "setting up took $((SECONDS - START)) s"
    local status=0
    IMAGE=$IMAGE REDIS_IMAGE=$REDIS_IMAGE NGINX_IMAGE=$NGINX_IMAGE PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE \
        CONTAINER_PREFIX=$NAME "$PY" -m deploy.verify "$WORK" || status=$?
    say "took $((SECONDS - START)) s in all"
    return $status
}

main "$@"
