#!/usr/bin/env bash
# Builds the source and destination images from the repository's Dockerfile and runs them the
# way the Airbyte platform does: files mounted at opaque paths, `write` fed on stdin, the
# commands run through `eval "$AIRBYTE_ENTRYPOINT ..."`, SIGTERM to stop. It also checks
# what CAT's image tests check (labels against metadata.yaml, AIRBYTE_ENTRYPOINT against
# ENTRYPOINT). The fake Clari Copilot API (the workspace's `clari-copilot-sandbox` binary, which
# the images do not contain) runs on the host; the containers reach it over host networking.
#
# Runs with podman (rootful, runc), because the machines this project is built on have no
# Docker daemon and no image registry: the base images the Dockerfile names are prepared
# locally (see docs/docker.md, "Building without a registry"), and crates come from a
# `cargo vendor` directory mounted into the build. The Dockerfile itself is the one a Docker
# user builds.
#
# Usage: acceptance-tests/docker-images.sh
# Environment: CLARI_DOCKER_CACHE (default /var/tmp/clari-docker-cache) keeps the debootstrap
# root, the vendored crates and podman's config between runs; everything is created if absent.
# Exit status: 0 when every check passed, 1 otherwise; the last line is "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/acceptance-tests/docker
CACHE=${CLARI_DOCKER_CACHE:-/var/tmp/clari-docker-cache}
MIRROR=${CLARI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SOURCE_IMAGE=airbyte/source-clari-copilot:dev
DEST_IMAGE=airbyte/destination-clari-copilot:dev
MSG="python3 $HERE/messages.py"
START=$SECONDS

step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - START))"; }
die() { echo "docker-images: $*" >&2; exit 1; }

PASSED=0
FAILED=0
FAILURES=()
# check DESCRIPTION COMMAND...: runs the command; passes when it exits 0.
check() {
    local what=$1
    shift
    if "$@"; then
        PASSED=$((PASSED + 1))
        echo "  ok    $what"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$what")
        echo "  FAIL  $what"
    fi
}
# equals EXPECTED ACTUAL: for check; prints both when they differ.
equals() {
    [ "$1" = "$2" ] && return 0
    echo "        expected: $1" >&2
    echo "        actual:   $2" >&2
    return 1
}

# ---- tools -------------------------------------------------------------------------------
step "tools: podman, runc, debootstrap"
missing=()
for tool in podman runc debootstrap python3; do
    command -v "$tool" > /dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]} and not root: install them"
    echo "installing ${missing[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap python3 > /dev/null
fi
podman --version

mkdir -p "$CACHE"
# Rootful podman on a host without systemd or cgroup limits for containers.
cat > "$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
export CONTAINERS_CONF=$CACHE/containers.conf
pm() { podman --runtime runc "$@"; }

# ---- base images: the ones the Dockerfile names, prepared locally when absent --------------
# debian:bookworm-slim: a debootstrap minbase root, trimmed the way the official slim image is.
prepare_debian_slim() {
    local ref=docker.io/library/debian:bookworm-slim
    if pm image exists "$ref"; then
        echo "reusing $ref"
        return
    fi
    local root=$CACHE/bookworm-root
    if [ ! -e "$root/.complete" ]; then
        rm -rf "$root"
        echo "debootstrap --variant=minbase bookworm (about a minute)"
        debootstrap --variant=minbase bookworm "$root" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed"; }
        # What the official slim variant leaves out, and keeps out of later installs.
        cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
        find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
        rm -rf "$root"/usr/share/{man,info,locale,lintian,linda}/* "$root"/var/lib/apt/lists/* \
            "$root"/var/cache/apt/*.bin "$root"/var/log/*.log
        touch "$root/.complete"
    fi
    tar --exclude=./.complete -C "$root" -c . \
        | pm import --change 'CMD ["bash"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$ref" > /dev/null
    rm -rf "$root"
    echo "prepared $ref from a debootstrap root"
}

# rust:<version>-slim-bookworm: debian:bookworm-slim plus gcc, libc6-dev, ca-certificates and
# the host's toolchain of the same version (the official image's layout).
prepare_rust_slim() {
    local version=$1 ref=docker.io/library/rust:$1-slim-bookworm
    if pm image exists "$ref"; then
        echo "reusing $ref"
        return
    fi
    local host_version sysroot toolchain ctx
    host_version=$(rustc --version | awk '{print $2}')
    case "$host_version" in
        "$version" | "$version".*) ;;
        *) die "the Dockerfile builds with rust $version but the host has rustc $host_version" ;;
    esac
    sysroot=$(rustc --print sysroot)
    toolchain=$host_version-$(rustc -vV | awk '/^host:/ {print $2}')
    ctx=$CACHE/rust-standin-context
    rm -rf "$ctx"
    mkdir -p "$ctx/toolchain/bin"
    cp -a "$sysroot/lib" "$ctx/toolchain/"
    cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$sysroot/bin/rustdoc" "$ctx/toolchain/bin/"
    pm build --pull=never --network host --build-arg "RUST_TOOLCHAIN=$toolchain" \
        --label "org.clari-copilot.local-standin=rust $host_version from the host" \
        -f "$HERE/rust-standin.Containerfile" -t "$ref" "$ctx" > "$CACHE/rust-standin.log" 2>&1 \
        || { tail -30 "$CACHE/rust-standin.log"; die "building the rust stand-in failed"; }
    rm -rf "$ctx"
    echo "prepared $ref (toolchain $toolchain from the host)"
}

step "base images named by the Dockerfile"
stages=$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" {print $4}' "$ROOT/Dockerfile")
for base in $(awk 'toupper($1) == "FROM" {print $2}' "$ROOT/Dockerfile" | sort -u); do
    if grep -qx "$base" <<< "$stages"; then
        continue
    fi
    case "$base" in
        debian:bookworm-slim) prepare_debian_slim ;;
        rust:*-slim-bookworm)
            prepare_debian_slim
            version=${base#rust:}
            prepare_rust_slim "${version%-slim-bookworm}"
            ;;
        *) die "no local stand-in for base image $base" ;;
    esac
done

# ---- crates: vendored on the host, mounted into the build with an offline cargo config -------
step "crates: cargo vendor of Cargo.lock"
lock_hash=$(sha256sum "$ROOT/Cargo.lock" "$ROOT/Cargo.toml" "$ROOT/sandbox/Cargo.toml" | sha256sum | cut -c1-16)
VENDOR=$CACHE/vendor-$lock_hash
if [ -d "$VENDOR" ]; then
    echo "reusing $VENDOR"
else
    rm -rf "$CACHE"/vendor-*
    (cd "$ROOT" && cargo vendor --quiet --locked --versioned-dirs "$VENDOR.tmp" > /dev/null)
    mv "$VENDOR.tmp" "$VENDOR"
    echo "vendored $(find "$VENDOR" -mindepth 1 -maxdepth 1 | wc -l) crates into $VENDOR"
fi
cat > "$CACHE/cargo-offline.toml" <<'EOF'
# Mounted over $CARGO_HOME/config.toml during the local image build: crates come from the
# vendored directory, and nothing is fetched.
[source.crates-io]
replace-with = "vendored"

[source.vendored]
directory = "/clari-vendor"

[net]
offline = true
EOF

# ---- the images ----------------------------------------------------------------------------
build_image() {
    local target=$1 tag=$2 began=$SECONDS
    pm build --pull=never --network none --target "$target" -t "$tag" \
        -v "$VENDOR:/clari-vendor:ro" -v "$CACHE/cargo-offline.toml:/usr/local/cargo/config.toml:ro" \
        -f "$ROOT/Dockerfile" "$ROOT" > "$CACHE/build-$target.log" 2>&1 \
        || { tail -40 "$CACHE/build-$target.log"; die "building --target $target failed"; }
    echo "built $tag (--target $target) in $((SECONDS - began))s"
}
step "docker build --target source / destination (podman)"
build_image source "$SOURCE_IMAGE"
build_image destination "$DEST_IMAGE"
# Earlier builds' untagged images (a build stage is over 1 GB); compiled crates stay in the
# cache mounts.
pm image prune -f > /dev/null
for image in "$SOURCE_IMAGE" "$DEST_IMAGE"; do
    size=$(pm image inspect --format '{{.Size}}' "$image")
    echo "$image: $((size / 1000000)) MB ($size bytes)"
done

# ---- the sandbox on the host ------------------------------------------------------------
WORK=$(mktemp -d)
chmod 755 "$WORK"
SANDBOX_PIDS=()
CONTAINERS=()
cleanup() {
    for name in "${CONTAINERS[@]}"; do pm rm -f "$name" > /dev/null 2>&1 || true; done
    for pid in "${SANDBOX_PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

step "sandbox API on the host"
(cd "$ROOT" && cargo build --locked --quiet --package clari-copilot-sandbox --bin clari-copilot-sandbox)
SANDBOX_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/clari-copilot-sandbox
# start_sandbox NAME ARGS...: starts a sandbox on a free port; sets SANDBOX_URL.
start_sandbox() {
    local name=$1
    shift
    "$SANDBOX_BIN" --port 0 "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    SANDBOX_PIDS+=($!)
    SANDBOX_URL=
    for _ in $(seq 100); do
        SANDBOX_URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/$name.out" | head -1 || true)
        [ -n "$SANDBOX_URL" ] && break
        sleep 0.1
    done
    [ -n "$SANDBOX_URL" ] || { cat "$WORK/$name.err"; die "the sandbox did not start"; }
    echo "sandbox $name at $SANDBOX_URL"
}
start_sandbox main --calls 60 --seed 7
URL=$SANDBOX_URL

# The platform's files: a directory per role, paths the connector must treat as opaque.
mkdir -p "$WORK/config" "$WORK/source" "$WORK/dest"
chmod 755 "$WORK/config" "$WORK/source" "$WORK/dest"
config_json() { # config_json URL SECRET [EXTRA]
    printf '{"api_key":"sandbox-key","api_secret":"%s","base_url":"%s","requests_per_second":1000%s}\n' \
        "$2" "$1" "${3:-}"
}
config_json "$URL" sandbox-password > "$WORK/config/connectionConfiguration.json"
config_json "$URL" wrong-password > "$WORK/config/badConfiguration.json"
cp "$WORK/config/connectionConfiguration.json" "$WORK/source/connectorConfig.json"
config_json "$URL" sandbox-password ',"on_rejected_record":"fail"' > "$WORK/dest/connectorConfig.json"
chmod 644 "$WORK"/*/*.json

# run NAME IMAGE [podman run options] -- ARGS: runs a container; stdout/stderr/exit code in
# $WORK/NAME.{out,err,rc}. Stdin is $WORK/NAME.in when it exists (with -i), else empty.
run() {
    local name=$1 image=$2
    shift 2
    local opts=()
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
    local stdin=/dev/null
    if [ -e "$WORK/$name.in" ]; then
        stdin=$WORK/$name.in
        opts+=(-i)
    fi
    local rc=0
    pm run --rm --network host "${opts[@]}" "$image" "$@" \
        < "$stdin" > "$WORK/$name.out" 2> "$WORK/$name.err" || rc=$?
    echo "$rc" > "$WORK/$name.rc"
    echo "  ran   $name: podman run ${opts[*]} ${image} $* -> exit $rc"
}
rc() { cat "$WORK/$1.rc"; }
# show NAME: what a failed run printed, for the log.
show() { echo "        --- $1 stdout (head)"; head -c 1500 "$WORK/$1.out" | sed 's/^/        /'; echo "        --- stderr (tail)"; tail -c 1500 "$WORK/$1.err" | sed 's/^/        /'; }
expect_exit() { equals "$1" "$(rc "$2")" || { show "$2"; return 1; }; }

# ---- image metadata (CAT: test_image_labels, test_image_environment_variables) -------------
image_checks() {
    local role=$1 image=$2 metadata=$3 binary=$4
    local inspect=$WORK/inspect-$role.json
    pm image inspect "$image" > "$inspect"
    local name version
    name=$($MSG metadata "$metadata" dockerRepository)
    version=$($MSG metadata "$metadata" dockerImageTag)
    check "$role: label io.airbyte.name = dockerRepository of ${metadata#$ROOT/} ($name)" \
        equals "$name" "$($MSG inspect "$inspect" label:io.airbyte.name)"
    check "$role: label io.airbyte.version = dockerImageTag of ${metadata#$ROOT/} ($version)" \
        equals "$version" "$($MSG inspect "$inspect" label:io.airbyte.version)"
    check "$role: AIRBYTE_ENTRYPOINT = ENTRYPOINT joined with spaces ($binary)" \
        equals "$($MSG inspect "$inspect" entrypoint)" "$($MSG inspect "$inspect" env:AIRBYTE_ENTRYPOINT)"
    check "$role: ENTRYPOINT runs $binary" equals "$binary" "$($MSG inspect "$inspect" entrypoint)"
    check "$role: USER is airbyte" equals airbyte "$($MSG inspect "$inspect" user)"
    run "$role-whoami" "$image" --entrypoint sh -- -c 'id -u; id -un; pwd'
    check "$role: runs as a non-root user (uid != 0, name airbyte, workdir /airbyte)" \
        sh -c "[ \"\$(sed -n 1p '$WORK/$role-whoami.out')\" != 0 ] && [ \"\$(sed -n 2,3p '$WORK/$role-whoami.out' | tr '\n' ' ')\" = 'airbyte /airbyte ' ]"
    run "$role-openssl" "$image" --entrypoint sh -- -c \
        "ldd /usr/local/bin/source-clari-copilot; echo ---; find / -xdev \\( -name 'libssl*' -o -name 'libcrypto*' -o -name openssl \\) -print 2>/dev/null; echo ---; grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt"
    check "$role: no OpenSSL (binary links no libssl/libcrypto; no libssl, libcrypto or openssl in the image)" \
        sh -c "! grep -Eq 'libssl|libcrypto|openssl' '$WORK/$role-openssl.out'"
    check "$role: CA bundle /etc/ssl/certs/ca-certificates.crt has 100+ certificates" \
        sh -c "[ \"\$(tail -1 '$WORK/$role-openssl.out')\" -ge 100 ] 2>/dev/null"
}

# ---- spec and check, as the platform runs them (both roles) --------------------------------
# command_checks ROLE NAME IMAGE: runs are named NAME-spec, NAME-check, ...
command_checks() {
    local role=$1 name=$2 image=$3
    run "$name-spec" "$image" -- spec
    check "$role: spec exits 0" expect_exit 0 "$name-spec"
    check "$role: spec prints exactly one SPEC with a connectionSpecification" $MSG spec-ok "$WORK/$name-spec.out"

    # The platform's launcher: a shell that evals "$AIRBYTE_ENTRYPOINT <command> ...".
    run "$name-eval-spec" "$image" --entrypoint sh -- -c \
        '[ -n "$AIRBYTE_ENTRYPOINT" ] || exit 127; eval "$AIRBYTE_ENTRYPOINT spec"'
    check "$role: sh -c 'eval \"\$AIRBYTE_ENTRYPOINT spec\"' exits 0" expect_exit 0 "$name-eval-spec"
    check "$role: ... and prints exactly one SPEC" $MSG spec-ok "$WORK/$name-eval-spec.out"

    run "$name-check" "$image" -v "$WORK/config:/config:ro" -- check --config /config/connectionConfiguration.json
    check "$role: check (config at /config/connectionConfiguration.json) exits 0" expect_exit 0 "$name-check"
    check "$role: check reports SUCCEEDED" equals SUCCEEDED "$($MSG status "$WORK/$name-check.out")"

    run "$name-check-bad" "$image" -v "$WORK/config:/config:ro" -- check --config /config/badConfiguration.json
    check "$role: check with a wrong secret exits 0" expect_exit 0 "$name-check-bad"
    check "$role: check with a wrong secret reports FAILED" equals FAILED "$($MSG status "$WORK/$name-check-bad.out")"
    check "$role: the wrong secret appears nowhere in the output" \
        sh -c "! grep -q wrong-password '$WORK/$name-check-bad.out' '$WORK/$name-check-bad.err'"
}

step "source image"
image_checks source "$SOURCE_IMAGE" "$ROOT/acceptance-tests/metadata.yaml" /usr/local/bin/source-clari-copilot

command_checks source source "$SOURCE_IMAGE"

run source-discover "$SOURCE_IMAGE" -v "$WORK/config:/config:ro" -- discover --config /config/connectionConfiguration.json
check "source: discover exits 0" expect_exit 0 source-discover
check "source: discover prints exactly one CATALOG" equals 1 "$($MSG count CATALOG "$WORK/source-discover.out")"
streams=$($MSG stream-names "$WORK/source-discover.out" 2> /dev/null || true)
echo "        streams: $streams"
$MSG configured-catalog "$WORK/source-discover.out" > "$WORK/source/catalog.json" 2> /dev/null || echo '{"streams":[]}' > "$WORK/source/catalog.json"
chmod 644 "$WORK/source/catalog.json"

# read, as the launcher runs it: eval'd from AIRBYTE_ENTRYPOINT, files under /source.
run source-read "$SOURCE_IMAGE" -v "$WORK/source:/source:ro" --entrypoint sh -- -c \
    'eval "$AIRBYTE_ENTRYPOINT read --config /source/connectorConfig.json --catalog /source/catalog.json"'
check "source: read (eval'd, /source/connectorConfig.json, /source/catalog.json) exits 0" expect_exit 0 source-read
records=$($MSG count RECORD "$WORK/source-read.out")
echo "        $records records, $($MSG count STATE "$WORK/source-read.out") states"
check "source: read emits records of every discovered stream" \
    equals "$(tr ' ' '\n' <<< "$streams" | sort | xargs)" "$($MSG record-streams "$WORK/source-read.out")"
check "source: read emits STATE messages" sh -c "[ $($MSG count STATE "$WORK/source-read.out") -gt 0 ]"
check "source: read emits no TRACE ERROR" equals "" "$($MSG trace-errors "$WORK/source-read.out")"

$MSG input-state "$WORK/source-read.out" > "$WORK/source/inputState.json"
chmod 644 "$WORK/source/inputState.json"
run source-read-state "$SOURCE_IMAGE" -v "$WORK/source:/source:ro" -- \
    read --config /source/connectorConfig.json --catalog /source/catalog.json --state /source/inputState.json
check "source: read with --state /source/inputState.json (the first read's states) exits 0" expect_exit 0 source-read-state
check "source: the second read emits STATE messages and no TRACE ERROR" \
    sh -c "[ $($MSG count STATE "$WORK/source-read-state.out") -gt 0 ] && [ -z \"$($MSG trace-errors "$WORK/source-read-state.out")\" ]"

# SIGTERM, as the platform sends it to end or cancel a sync: a slow API, the signal after the
# first record. The binary is PID 1 in the container, so it must handle the signal itself; as
# PID 1 it cannot die of the re-raised signal, so it exits 143 (128 + SIGTERM), the code a
# shell reports for a process killed by SIGTERM.
start_sandbox slow --calls 3000 --seed 7 --latency-ms 200
mkdir -p "$WORK/slow"
chmod 755 "$WORK/slow"
config_json "$SANDBOX_URL" sandbox-password > "$WORK/slow/connectorConfig.json"
cp "$WORK/source/catalog.json" "$WORK/slow/catalog.json"
chmod 644 "$WORK/slow"/*.json
name=clari-sigterm-$$
CONTAINERS+=("$name")
pm run --rm --name "$name" --network host -v "$WORK/slow:/source:ro" "$SOURCE_IMAGE" \
    read --config /source/connectorConfig.json --catalog /source/catalog.json \
    < /dev/null > "$WORK/sigterm.out" 2> "$WORK/sigterm.err" &
podman_pid=$!
for _ in $(seq 300); do
    grep -q '"type":"RECORD"' "$WORK/sigterm.out" 2> /dev/null && break
    sleep 0.1
done
sent=$SECONDS
killed=no
pm kill --signal TERM "$name" > /dev/null 2>&1 && killed=yes
sigterm_rc=0
wait "$podman_pid" || sigterm_rc=$?
took=$((SECONDS - sent))
echo "  ran   sigterm: podman kill --signal TERM during a read -> exit $sigterm_rc after ${took}s"
check "source: the read was still running when SIGTERM was sent" equals yes "$killed"
check "source: SIGTERM during a read ends it with exit 143 (killed by SIGTERM) within 10 s" \
    sh -c "[ $sigterm_rc = 143 ] && [ $took -le 10 ]"
check "source: ... after records, with complete JSON lines only" \
    sh -c "[ $($MSG count RECORD "$WORK/sigterm.out") -gt 0 ] && [ \"\$(grep -cv '^{.*}\$' '$WORK/sigterm.out')\" = 0 ]"
check "source: ... and the running stream's last status INCOMPLETE" \
    sh -c "grep '\"STREAM_STATUS\"' '$WORK/sigterm.out' | tail -n 1 | grep -q '\"status\":\"INCOMPLETE\"'"

step "destination image"
image_checks destination "$DEST_IMAGE" "$ROOT/acceptance-tests/destination/metadata.yaml" /usr/local/bin/destination-clari-copilot

command_checks destination dest "$DEST_IMAGE"

# write: the configured catalog and config under /dest, Airbyte messages on stdin.
cat > "$WORK/dest/catalog.json" <<'EOF'
{"streams": [{"stream": {"name": "accounts", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
              "sync_mode": "full_refresh", "destination_sync_mode": "append"}]}
EOF
chmod 644 "$WORK/dest/catalog.json"
cat > "$WORK/dest-write.in" <<'EOF'
{"type":"RECORD","record":{"stream":"accounts","data":{"crm_id":"docker-acc-1","name":"Docker One"},"emitted_at":1}}
{"type":"RECORD","record":{"stream":"accounts","data":{"crm_id":"docker-acc-2","name":"Docker Two"},"emitted_at":1}}
{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"accounts"},"stream_state":{"upto":2}},"sourceStats":{"recordCount":2.0}}}
EOF
run dest-write "$DEST_IMAGE" -v "$WORK/dest:/dest:ro" --entrypoint sh -- -c \
    'eval "$AIRBYTE_ENTRYPOINT write --config /dest/connectorConfig.json --catalog /dest/catalog.json"'
check "destination: write (eval'd, /dest files, 2 records + 1 STATE on stdin) exits 0" expect_exit 0 dest-write
check "destination: write echoes the STATE once its records are written" \
    sh -c "[ $($MSG count STATE "$WORK/dest-write.out") = 1 ] && grep -q '\"upto\":2' '$WORK/dest-write.out'"
check "destination: write emits no TRACE ERROR" equals "" "$($MSG trace-errors "$WORK/dest-write.out")"

# ---- summary -------------------------------------------------------------------------------
step "summary"
for image in "$SOURCE_IMAGE" "$DEST_IMAGE"; do
    echo "$image: $(($(pm image inspect --format '{{.Size}}' "$image") / 1000000)) MB"
done
echo "took $((SECONDS - START))s"
for failure in "${FAILURES[@]}"; do echo "FAILED: $failure"; done
echo "docker-images: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
