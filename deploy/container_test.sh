#!/usr/bin/env bash
# The container, built and run for real with podman, no image registry needed
# (`make container-test`; .ci/run runs it after `make test`).
#
# 1. installs podman, buildah, debootstrap and runc (apt) and podman-compose (PyPI, own venv)
#    when missing; where no systemd runs, engine settings go to a containers.conf of its own
#    named by CONTAINERS_CONF (nothing under /etc is edited);
# 2. builds the base images when missing: Debian bookworm from the machine's apt mirror
#    (debootstrap, `podman import`), then python3 + venv on it (deploy/base/Containerfile),
#    trusting the host's extra CA certificates;
# 3. builds deploy/Dockerfile unchanged on that base, torch from a local CPU wheel if one is
#    found (TORCH_WHEELS, pip's find-links, /opt/wheels), else from PyTorch's CPU index;
# 4. smoke-tests the image: ingest a read-only corpus, search, serve hardened on a read-only
#    root (uid 10001, no capabilities), /v1/health, /v1/ready, /v1/search over HTTP, /docs,
#    `podman healthcheck run`; `podman-compose config` on deploy/compose.yaml; the retriever
#    alone on the embedded store (compose.embedded.yaml); the full stack with a Qdrant server
#    when QDRANT_IMAGE_TAR names an image tarball (`podman load -i`).
# Each passing check prints `ok   NAME`; a failure prints `FAIL NAME` with the log's tail and
# exits 1. Containers, volumes, networks and pods it made are removed by id on exit; images
# stay for the cache, earlier builds of its own are pruned.
#
# Policy (RAGCTL_CONTAINER_TEST): `auto` (default) skips with a SKIPPED line and exit 0 only
# where it cannot run at all (not Linux; tools missing without root or apt-get; a non-root
# user's podman that does not run; base images missing without root for debootstrap); every
# other failure is a failure. `require` turns that skip into exit 1; `skip` skips at once.
#
# Usage: deploy/container_test.sh [--cold] [--report FILE.json]
#   --cold        rebuild the base images and build the project image without the layer cache
#   --report F    write timings, sizes and the checks passed to F (JSON)
# Environment: TORCH_WHEELS (folder with the CPU torch wheel), QDRANT_IMAGE_TAR, DEBIAN_MIRROR,
#   RAGCTL_CT_IMAGE (default localhost/ragctl:container-test), RAGCTL_CT_READY_TIMEOUT_S (300),
#   RAGCTL_CT_CACHE (where the podman-compose venv lives).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${RAGCTL_CONTAINER_TEST:-auto}
IMAGE=${RAGCTL_CT_IMAGE:-localhost/ragctl:container-test}
DEBIAN_IMAGE=localhost/debian:bookworm
BASE_IMAGE=localhost/python:3.11-bookworm
# The Dockerfile's stages that become images, each smoke-tested the same way. A slim
# `serving` stage (onnxruntime, no torch) is added here once it exists in the Dockerfile.
TARGETS=(runtime)
COMPOSE_VERSION=1.6.0 # Debian's 1.0.3 ignores `name` and `profiles`
READY_TIMEOUT_S=${RAGCTL_CT_READY_TIMEOUT_S:-300}
CACHE=${RAGCTL_CT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ragctl-container-test}
QUERY="Smoke is pouring out of the machine that turns green beans brown. What are my first steps?"
EXPECTED_DOC=roaster-fire-procedure.txt # examples/queries.jsonl: q02, first with the base model

COLD=0
REPORT=""
while [ $# -gt 0 ]; do
  case $1 in
    --cold) COLD=1 ;;
    --report) REPORT=$(realpath -m "$2"); shift ;;
    *) echo "usage: $0 [--cold] [--report FILE.json]" >&2; exit 2 ;;
  esac
  shift
done

# --- output, failure, cleanup ----------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ragctl-ct.XXXXXX")
LOG=$WORK/step.log
STEP="setup"
T0=$(date +%s.%N)
: > "$WORK/facts"
CONTAINERS=() # ids of containers started here (podman run --cidfile)
VOLUMES=()    # names of volumes created here
PROJECTS=()   # compose projects brought up here

# fd 3: the caller's stdout. The ERR and EXIT traps may run inside a step whose output goes to
# $LOG (a failing function fires ERR in its own redirections); what they say must not.
exec 3>&1
say() { printf '%s\n' "$*" >&3; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
fact() { printf '%s=%s\n' "$1" "$2" >> "$WORK/facts"; } # a measured number for --report
ok() { say "ok   $1${2:+ ($2)}"; printf '%s\n' "$1" >> "$WORK/checks"; }

# Runs a step, its output to $LOG; on failure the trap names it and shows the log's tail.
step() {
  STEP=$1
  shift
  "$@" > "$LOG" 2>&1
}

fail() { # fail MESSAGE: the current check failed for a reason the script saw itself
  printf '%s\n' "$*" >> "$LOG"
  return 1
}

on_error() {
  local rc=$?
  trap - ERR
  # A failure inside $(...) ends that subshell; the caller reports it.
  [ "$BASHPID" = "$$" ] || exit "$rc"
  say "FAIL $STEP (exit $rc)"
  if [ -s "$LOG" ]; then
    say "---- last lines of its output ($LOG) ----"
    tail -n 60 "$LOG" >&3
    say "----"
  fi
  local project
  for project in "${PROJECTS[@]}"; do
    mapfile -t -O "${#CONTAINERS[@]}" CONTAINERS \
      < <(podman ps -aq --filter "label=io.podman.compose.project=$project" 2> /dev/null)
  done
  for id in "${CONTAINERS[@]}"; do
    if podman container exists "$id" 2> /dev/null; then
      say "---- podman logs ${id:0:12} (last 40 lines) ----"
      podman logs --tail 40 "$id" >&3 2>&1 || true
    fi
  done
  KEEP_WORK=1
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  for project in "${PROJECTS[@]}"; do remove_project "$project"; done
  for id in "${CONTAINERS[@]}" $(cat "$WORK"/cid.* 2> /dev/null); do
    podman rm -f -t 5 "$id" > /dev/null 2>&1
  done
  for name in "${VOLUMES[@]}"; do podman volume rm -f "$name" > /dev/null 2>&1; done
  if [ -n "${KEEP_WORK:-}" ]; then
    say "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap on_error ERR
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() { # skip REASON: containers cannot run on this machine
  if [ "$MODE" = require ]; then
    say "FAIL prerequisites: $1 (RAGCTL_CONTAINER_TEST=require)"
    exit 1
  fi
  say "SKIPPED container test: $1"
  say "  (it needs Linux with podman, or root with apt-get to install it; RAGCTL_CONTAINER_TEST=require makes this an error)"
  exit 0
}

# --- 1. tools ----------------------------------------------------------------------------------
install_tools() {
  local missing=()
  command -v podman > /dev/null || missing+=(podman buildah runc)
  command -v debootstrap > /dev/null || missing+=(debootstrap debian-archive-keyring)
  command -v curl > /dev/null || missing+=(curl)
  python3 -c 'import ensurepip, venv' 2> /dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(uname -s)" != Linux ]; then skip "not Linux ($(uname -s)); podman needs a Linux host"; fi
  if [ "$(id -u)" != 0 ]; then skip "${missing[*]} missing and not root (cannot apt-get install)"; fi
  if ! command -v apt-get > /dev/null; then skip "${missing[*]} missing and no apt-get"; fi
  local t
  t=$(now)
  STEP="install ${missing[*]} (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
    > "$LOG" 2>&1
  fact apt_install_s "$(since "$t")"
  ok "installed ${missing[*]}" "$(since "$t") s"
}

install_compose() {
  COMPOSE=$CACHE/podman-compose-$COMPOSE_VERSION/bin/podman-compose
  PY=$CACHE/podman-compose-$COMPOSE_VERSION/bin/python # has PyYAML, for the checks
  if [ -x "$COMPOSE" ] && "$COMPOSE" --version 2> /dev/null | grep -q "$COMPOSE_VERSION"; then
    return 0
  fi
  rm -rf "$CACHE/podman-compose-$COMPOSE_VERSION"
  mkdir -p "$CACHE"
  local t
  t=$(now)
  step "install podman-compose $COMPOSE_VERSION (PyPI)" bash -c "
    python3 -m venv '$CACHE/podman-compose-$COMPOSE_VERSION' &&
    '$CACHE/podman-compose-$COMPOSE_VERSION/bin/pip' install --quiet 'podman-compose==$COMPOSE_VERSION'"
  fact compose_install_s "$(since "$t")"
  ok "installed podman-compose $COMPOSE_VERSION" "$(since "$t") s"
}

# Engine settings a machine without systemd (a container, like these machines) needs, in a
# file of our own (CONTAINERS_CONF): runc and cgroupfs (crun refuses this cgroup layout),
# file events (no journald), and ulimits within root's hard limits (podman's defaults exceed
# them). A CONTAINERS_CONF set by the caller, or a host run by systemd, keeps its own.
configure_engine() {
  local nofile nproc
  if [ -n "${CONTAINERS_CONF:-}" ] || [ -d /run/systemd/system ]; then
    check_podman_runs "${CONTAINERS_CONF:-its own settings}"
    return 0
  fi
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  [ "$nproc" -gt 32768 ] && nproc=32768
  export CONTAINERS_CONF=$WORK/containers.conf
  cat > "$CONTAINERS_CONF" << EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  check_podman_runs "runc, cgroupfs: $CONTAINERS_CONF"
}

# Root's podman must run here; a user's may lack what rootless podman needs (subuids, ...).
check_podman_runs() {
  STEP="podman info ($1)"
  if ! podman info > "$LOG" 2>&1; then
    [ "$(id -u)" = 0 ] || skip "podman does not run for uid $(id -u): $(grep -m 1 -i error "$LOG")"
    fail "podman info failed as root"
  fi
  ok "podman $(podman version --format '{{.Client.Version}}') runs ($1)"
}

check_disk() {
  local root free_gb
  root=$(podman info --format '{{.Store.GraphRoot}}')
  free_gb=$(df -P -BG "$root" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  STEP="disk space under $root"
  if [ "$free_gb" -lt 8 ]; then
    fail "only ${free_gb} GB free under $root; a build needs about 8 GB (podman image prune?)"
  fi
}

# --- 2. base images --------------------------------------------------------------------------
# The Debian mirror this machine's apt uses (the first .../debian URI), else deb.debian.org.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  local found
  found=$({
    cat /etc/apt/sources.list.d/*.sources 2> /dev/null \
      | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2> /dev/null \
      | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
  } | grep -E '/debian/?$' | head -n 1 || true)
  echo "${found:-http://deb.debian.org/debian}"
}

# The host's extra CA certificates: what it trusts beyond Debian's bundle.
extra_ca_certs() {
  find /usr/local/share/ca-certificates -name '*.crt' -type f 2> /dev/null | sort || true
}

# A label on each base image records what it was made from; other inputs -> rebuilt.
image_label() {
  podman image inspect --format "{{index .Labels \"$2\"}}" "$1" 2> /dev/null || true
}

build_debian_image() {
  local mirror=$1 t rootfs
  if [ "$COLD" = 0 ] && [ "$(image_label "$DEBIAN_IMAGE" org.ragctl.mirror)" = "$mirror" ]; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || skip "building $DEBIAN_IMAGE needs root (debootstrap)"
  t=$(now)
  rootfs=$WORK/rootfs
  step "debootstrap bookworm from $mirror" \
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
  # debootstrap's downloaded packages and lists are not part of the system (~80 MB).
  find "$rootfs/var/cache/apt" -name '*.deb' -delete
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  step "podman import $DEBIAN_IMAGE" bash -c "
    tar -C '$rootfs' -c . | podman import --change 'LABEL org.ragctl.mirror=$mirror' \
      --change 'CMD [\"/bin/bash\"]' - '$DEBIAN_IMAGE'"
  rm -rf "$rootfs"
  fact debian_image_s "$(since "$t")"
  ok "base $DEBIAN_IMAGE (debootstrap minbase from $mirror)" "$(since "$t") s"
}

build_python_image() {
  local context=$WORK/base-context inputs t
  mkdir -p "$context/extra-ca"
  while read -r cert; do
    [ -n "$cert" ] && cp "$cert" "$context/extra-ca/"
  done < <(extra_ca_certs)
  inputs=$({
    grep -v '^[[:space:]]*#' "$ROOT/deploy/base/Containerfile" # comments change nothing
    find "$context/extra-ca" -type f -exec cat {} +
    podman image inspect --format '{{.Id}}' "$DEBIAN_IMAGE"
  } | sha256sum | cut -c1-16)
  if [ "$COLD" = 0 ] && [ "$(image_label "$BASE_IMAGE" org.ragctl.inputs)" = "$inputs" ]; then
    ok "base images present ($BASE_IMAGE on $DEBIAN_IMAGE)"
    return 0
  fi
  t=$(now)
  step "build $BASE_IMAGE (deploy/base/Containerfile)" \
    podman build --format docker --pull=never --no-cache -f "$ROOT/deploy/base/Containerfile" \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --label "org.ragctl.inputs=$inputs" \
    -t "$BASE_IMAGE" "$context"
  fact python_image_s "$(since "$t")"
  ok "base $BASE_IMAGE (python3 $(podman run --rm --no-healthcheck "$BASE_IMAGE" \
    python3 -c 'import sys; print(".".join(map(str, sys.version_info[:3])))'), \
$(find "$context/extra-ca" -name '*.crt' | wc -l) extra CA certificates)" "$(since "$t") s"
}

# --- 3. the project image --------------------------------------------------------------------
# A folder holding the CPU torch wheel for the base's Python (cp311), if this machine has one.
torch_wheel_dir() {
  local version dirs dir
  version=$(sed -n 's/^TORCH ?= torch==//p' "$ROOT/Makefile")
  dirs="${TORCH_WHEELS:-} ${PIP_FIND_LINKS:-} $({ python3 -m pip config list 2> /dev/null || true; } \
    | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p") /opt/wheels"
  for dir in $dirs; do
    dir=${dir#file://}
    if compgen -G "$dir/torch-$version+cpu-cp311-*.whl" > /dev/null; then
      echo "$dir"
      return 0
    fi
  done
  return 0
}

build_project_image() {
  local target=$1 tag=$2 wheels t old args=()
  wheels=$(torch_wheel_dir)
  if [ -n "$wheels" ]; then
    args+=(--build-arg "TORCH_INDEX=--find-links=/wheels" -v "$wheels:/wheels:ro")
  fi # else the Dockerfile's default: PyTorch's CPU index
  [ "$COLD" = 1 ] && args+=(--no-cache)
  old=$(podman image inspect --format '{{.Id}}' "$tag" 2> /dev/null || true)
  t=$(now)
  step "podman build deploy/Dockerfile --target $target" \
    podman build --format docker --pull=never -f "$ROOT/deploy/Dockerfile" \
    --ignorefile "$ROOT/deploy/Dockerfile.dockerignore" --target "$target" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "${args[@]}" -t "$tag" "$ROOT"
  fact "${target}_build_s" "$(since "$t")"
  cp "$LOG" "$WORK/build.$target.log"
  fact "${target}_build_steps_cached" "$(grep -c '^--> Using cache' "$LOG" || true)"
  local size id
  id=$(podman image inspect --format '{{.Id}}' "$tag")
  size=$(podman image inspect --format '{{.Size}}' "$tag")
  fact "${target}_image_bytes" "$size"
  ok "built $tag (target $target, torch from ${wheels:-the PyTorch CPU index})" \
    "$(since "$t") s, $((size / 1000000)) MB"
  # The image the tag pointed at before, unless something still uses it.
  if [ -n "$old" ] && [ "$old" != "$id" ]; then podman rmi "$old" > /dev/null 2>&1 || true; fi
  # HEALTHCHECK survives only in the docker format (OCI drops it silently).
  STEP="image $tag keeps its HEALTHCHECK"
  podman image inspect "$tag" > "$LOG"
  "$PY" -c 'import json, sys; check = json.load(open(sys.argv[1]))[0].get("Healthcheck") or {}
sys.exit(0 if "/v1/health" in " ".join(check.get("Test", [])) else 1)' "$LOG" \
    || fail "no HEALTHCHECK in $tag (built without --format docker?)"
  podman history --no-trunc --format '{{.Size}}@@{{.CreatedBy}}' "$tag" > "$WORK/history.$target"
}

# Untagged images built on our base images (they inherit its labels) that none of this run's
# builds produced or reused: earlier builds' stages, superseded bases. The layer cache of
# this run stays; disk stays bounded however often CI builds.
prune_old_builds() {
  local keep id root
  # podman build prints `--> 0123456789a` (11 hex digits) or `--> Using cache <64 digits>`.
  keep=$(cat "$WORK"/build.*.log 2> /dev/null | grep -oE '^--> (Using cache )?[0-9a-f]{11,64}' \
    | grep -oE '[0-9a-f]{11,64}$' | cut -c1-11 | sort -u || true)
  for _ in 1 2; do # a base goes once the images on it are gone
    for id in $(podman images -q --filter dangling=true --filter label=org.ragctl.inputs) \
      $(podman images -q --filter dangling=true --filter label=org.ragctl.mirror); do
      grep -qx "${id:0:11}" <<< "$keep" || podman rmi "$id" > /dev/null 2>&1 || true
    done
  done
  root=$(podman info --format '{{.Store.GraphRoot}}')
  ok "old builds pruned: $(podman images -q | wc -l) images left, $(df -P -BG "$root" \
    | awk 'NR == 2 { print $4 }') free under $root"
}

# --- 4. smoke tests --------------------------------------------------------------------------
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_once() { # a one-off container; its id is recorded in case the run is interrupted
  local cid=$WORK/cid.$RANDOM$RANDOM
  podman run --rm --no-healthcheck --cidfile "$cid" "$@"
}

# http GET|POST URL [JSON] -> the body on stdout; the status code in $WORK/status
http() {
  local method=$1 url=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" -H 'content-type: application/json' \
      --data "$body" --max-time 30 "$url" > "$WORK/status"
  else
    curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" --max-time 30 "$url" > "$WORK/status"
  fi
  cat "$WORK/body"
}

# The expected document among the top 3 of a search answer (CLI --json or HTTP) in FILE.
expect_hit() {
  "$PY" -c '
import json, sys
answer, doc = json.load(open(sys.argv[2])), sys.argv[1]
top = [hit["doc_id"] for hit in answer["results"][:3]]
sys.exit(0 if any(d.endswith(doc) for d in top) else f"{doc} not in the top 3: {top}")
' "$EXPECTED_DOC" "$1"
}

# wait_ready URL CID -> seconds until GET URL answered 200 (the container must stay up)
wait_ready() {
  local url=$1 cid=$2 start deadline
  start=$(now)
  deadline=$(($(date +%s) + READY_TIMEOUT_S))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url")" = 200 ]; then
      since "$start"
      return 0
    fi
    if [ "$(podman inspect --format '{{.State.Running}}' "$cid")" != true ]; then
      fail "the container exited before $url answered 200"
    fi
    sleep 0.25
  done
  fail "$url did not answer 200 within ${READY_TIMEOUT_S} s (RAGCTL_CT_READY_TIMEOUT_S)"
}

smoke_test_image() {
  local target=$1 tag=$2 volume port cid ready
  volume=ragctl-ct-$$-$target
  STEP="volume $volume"
  podman volume create "$volume" > "$LOG" 2>&1
  VOLUMES+=("$volume")

  step "ingest examples/corpus (mounted read-only) into a volume" \
    run_once -v "$ROOT/examples/corpus:/corpus:ro" -v "$volume:/data" "$tag" ingest /corpus
  grep -q 'collection now holds' "$LOG" || fail "no ingest summary"
  ok "ingest: $(grep -o '[0-9]* documents' "$LOG" | head -n 1), $(grep -o '[0-9]* chunks written' "$LOG")"

  step "ingest again writes nothing" \
    run_once -v "$ROOT/examples/corpus:/corpus:ro" -v "$volume:/data" "$tag" ingest /corpus
  grep -q ' 0 chunks written' "$LOG" || fail "a second ingest of the same corpus wrote chunks"
  ok "re-ingest unchanged: 0 chunks written"

  STEP="search (CLI, --json)"
  run_once -v "$volume:/data" "$tag" search "$QUERY" -k 5 --json > "$WORK/search.json" 2> "$LOG"
  expect_hit "$WORK/search.json" 2>> "$LOG" || fail "search answered without $EXPECTED_DOC"
  ok "search: $EXPECTED_DOC in the top 3"

  port=$(free_port)
  STEP="serve hardened: --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges"
  local start
  start=$(now)
  # Keys: `serve` refuses a non-loopback address with none (searches stay open without a
  # read key).
  podman run -d --cidfile "$WORK/cid.serve.$target" --read-only --tmpfs /tmp --cap-drop ALL \
    --security-opt no-new-privileges:true -p "127.0.0.1:$port:8000" -v "$volume:/data" \
    -e RAGCTL_RETRIEVER__WRITE_API_KEY=container-test-write-key \
    -e RAGCTL_RETRIEVER__ADMIN_API_KEY=container-test-admin-key "$tag" > "$LOG" 2>&1
  cid=$(cat "$WORK/cid.serve.$target")
  CONTAINERS+=("$cid")
  STEP="GET /v1/ready answers 200"
  wait_ready "http://127.0.0.1:$port/v1/ready" "$cid" > "$WORK/ready_s"
  ready=$(since "$start")
  fact "${target}_ready_s" "$ready"
  ok "serve (read-only root, no capabilities): /v1/ready 200" "$ready s from podman run"

  STEP="GET /v1/health"
  http GET "http://127.0.0.1:$port/v1/health" > "$LOG"
  [ "$(cat "$WORK/status")" = 200 ] || fail "/v1/health answered $(cat "$WORK/status")"
  ok "GET /v1/health 200"

  STEP="POST /v1/search"
  http POST "http://127.0.0.1:$port/v1/search" \
    "$("$PY" -c 'import json, sys; print(json.dumps({"query": sys.argv[1], "k": 5}))' "$QUERY")" \
    > "$LOG"
  [ "$(cat "$WORK/status")" = 200 ] || fail "/v1/search answered $(cat "$WORK/status")"
  expect_hit "$WORK/body" 2>> "$LOG" || fail "/v1/search answered without $EXPECTED_DOC"
  ok "POST /v1/search 200: $EXPECTED_DOC in the top 3"

  # /docs and the assets it names come from the installed package (package data), offline.
  STEP="GET /docs and its assets"
  http GET "http://127.0.0.1:$port/docs" > "$LOG"
  [ "$(cat "$WORK/status")" = 200 ] || fail "/docs answered $(cat "$WORK/status")"
  local asset assets=0
  { grep -oE '(src|href)="/[^"]+"' "$WORK/body" || true; } | cut -d'"' -f2 > "$WORK/assets"
  while read -r asset; do
    http GET "http://127.0.0.1:$port$asset" > /dev/null
    [ "$(cat "$WORK/status")" = 200 ] || fail "$asset (named by /docs) answered $(cat "$WORK/status")"
    assets=$((assets + 1))
  done < "$WORK/assets"
  [ "$assets" -gt 0 ] || fail "/docs names no local asset"
  ok "GET /docs 200 and its $assets assets, served from the image"

  step "podman healthcheck run" podman healthcheck run "$cid"
  ok "podman healthcheck run: healthy"

  STEP="the server runs as uid 10001"
  podman exec "$cid" cat /proc/1/status > "$LOG" 2>&1
  grep -Eq '^Uid:[[:space:]]+10001[[:space:]]' "$LOG" || fail "pid 1 is not uid 10001"
  grep -Eq '^CapEff:[[:space:]]+0+$' "$LOG" || fail "pid 1 has effective capabilities"
  grep -Eq '^NoNewPrivs:[[:space:]]+1$' "$LOG" || fail "no_new_privs is not set"
  ok "non-root: pid 1 uid 10001, no capabilities, no_new_privs"

  STEP="the root filesystem is read-only"
  if podman exec "$cid" sh -c 'touch /opt/ragctl/written' > "$LOG" 2>&1; then
    fail "wrote /opt/ragctl/written on a --read-only root"
  fi
  podman exec "$cid" sh -c 'touch /tmp/written /data/written' > "$LOG" 2>&1 \
    || fail "/tmp or /data is not writable"
  ok "read-only root; /tmp and /data writable"

  step "stop the server" podman rm -f -t 10 "$cid"
  podman volume rm -f "$volume" > /dev/null
}

# --- compose ---------------------------------------------------------------------------------
# Test keys for compose's ${...}; an env file keeps a developer's deploy/.env out of it.
compose_env() {
  cat > "$WORK/compose.env" << EOF
QDRANT_API_KEY=container-test-qdrant-key
ADMIN_API_KEY=container-test-admin-key
RETRIEVER_IMAGE=$IMAGE
EOF
}

compose() { # compose PROJECT FILE... -- ARGS...
  local project=$1 files=()
  shift
  while [ "$1" != -- ]; do
    files+=(-f "$1")
    shift
  done
  shift
  "$COMPOSE" --env-file "$WORK/compose.env" -p "$project" "${files[@]}" "$@"
}

# Everything a compose project made, by id: containers, pod, volumes, network.
remove_project() {
  local project=$1 id
  for id in $(podman ps -aq --filter "label=io.podman.compose.project=$project"); do
    podman rm -f -t 5 "$id" > /dev/null 2>&1
  done
  for id in $(podman pod ps -q --filter "name=^pod_$project\$"); do
    podman pod rm -f "$id" > /dev/null 2>&1
  done
  for id in $(podman volume ls -q --filter "label=io.podman.compose.project=$project"); do
    podman volume rm -f "$id" > /dev/null 2>&1
  done
  for id in $(podman network ls -q --filter "label=io.podman.compose.project=$project"); do
    podman network rm -f "$id" > /dev/null 2>&1
  done
}

# Override for the test only: a free host port instead of 8000 (which may be taken).
port_override() {
  cat > "$WORK/compose.port.yaml" << EOF
services:
  $1:
    ports: !override ["127.0.0.1:$2:8000"]
EOF
  echo "$WORK/compose.port.yaml"
}

check_compose_config() {
  local compose_file=$ROOT/deploy/compose.yaml
  compose_env
  STEP="podman-compose config (deploy/compose.yaml)"
  compose ragctl-ct-config "$compose_file" -- --profile retune config > "$WORK/config.yaml" \
    2> "$LOG"
  "$PY" - "$WORK/config.yaml" << 'EOF' 2>> "$LOG" || fail "podman-compose config: unexpected shape"
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
services = config["services"]
assert {"qdrant", "retriever", "retune"} <= set(services), services.keys()
retriever = services["retriever"]
assert retriever["environment"]["RAGCTL_STORE__URL"] == "http://qdrant:6333"
assert retriever["environment"]["RAGCTL_STORE__API_KEY"] == "container-test-qdrant-key"
assert "qdrant" in retriever["depends_on"]
assert services["retune"]["environment"]["RAGCTL_STORE__URL"] == "http://qdrant:6333"
EOF
  ok "podman-compose config: deploy/compose.yaml (qdrant, retriever, retune)"

  STEP="compose refuses to start without the keys"
  if env -u QDRANT_API_KEY "$COMPOSE" -p ragctl-ct-config -f "$compose_file" \
    --env-file /dev/null config > "$LOG" 2>&1; then
    fail "compose config passed without QDRANT_API_KEY"
  fi
  grep -q 'set QDRANT_API_KEY' "$LOG" || fail "no message naming QDRANT_API_KEY"
  ok "podman-compose config without QDRANT_API_KEY: refused, naming it"

  STEP="podman-compose config (+ compose.embedded.yaml)"
  compose ragctl-ct-config "$compose_file" "$ROOT/deploy/compose.embedded.yaml" -- config \
    > "$WORK/config.yaml" 2> "$LOG"
  "$PY" - "$WORK/config.yaml" << 'EOF' 2>> "$LOG" || fail "the embedded override did not apply"
import sys, yaml
retriever = yaml.safe_load(open(sys.argv[1]))["services"]["retriever"]
assert "RAGCTL_STORE__URL" not in retriever["environment"], retriever["environment"]
assert "RAGCTL_STORE__API_KEY" not in retriever["environment"]
assert not retriever.get("depends_on"), retriever.get("depends_on")
EOF
  ok "podman-compose config: compose.embedded.yaml drops store.url and the qdrant dependency"
}

# The retriever alone on the embedded store, as compose starts it (read-only, no caps).
check_compose_embedded() {
  local project=ragctl-ct-$$-embedded port cid ready start
  port=$(free_port)
  PROJECTS+=("$project")
  start=$(now)
  step "podman-compose up retriever (compose.embedded.yaml)" \
    compose "$project" "$ROOT/deploy/compose.yaml" "$ROOT/deploy/compose.embedded.yaml" \
    "$(port_override retriever "$port")" -- up -d --no-build retriever
  cid=$(podman ps -q --filter "label=io.podman.compose.project=$project" \
    --filter "label=io.podman.compose.service=retriever")
  [ -n "$cid" ] || fail "no retriever container in project $project"
  STEP="compose retriever: GET /v1/ready answers 200"
  wait_ready "http://127.0.0.1:$port/v1/ready" "$cid" > /dev/null
  ready=$(since "$start")
  fact compose_embedded_ready_s "$ready"
  http GET "http://127.0.0.1:$port/v1/ready" > "$LOG"
  grep -q docs "$LOG" || fail "/v1/ready does not name the collection docs"
  ok "podman-compose up retriever (embedded store): /v1/ready 200" "$ready s"
  step "podman healthcheck run (compose retriever)" podman healthcheck run "$cid"
  ok "compose retriever: podman healthcheck run healthy"
  step "podman-compose down -v" compose "$project" "$ROOT/deploy/compose.yaml" \
    "$ROOT/deploy/compose.embedded.yaml" -- down -v -t 10
  remove_project "$project"
}

# The whole stack with a Qdrant server, where an image tarball is at hand (no registry here):
#   podman save -o qdrant.tar docker.io/qdrant/qdrant:v1.19.1   # on a machine that can pull
#   QDRANT_IMAGE_TAR=qdrant.tar make container-test
# Health checks never run by themselves without systemd, so `depends_on: service_healthy`
# cannot be waited on: qdrant is started first and checked by hand, then the retriever.
check_compose_stack() {
  local tar=$1 project=ragctl-ct-$$-stack qdrant_image port cid qcid ready start i
  qdrant_image=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["services"]["qdrant"]["image"])' \
    "$ROOT/deploy/compose.yaml")
  step "podman load -i $tar" podman load -i "$tar"
  podman image exists "$qdrant_image" || podman image exists "docker.io/$qdrant_image" \
    || fail "$tar does not hold $qdrant_image (compose.yaml's pin)"
  ok "podman load: $qdrant_image"
  port=$(free_port)
  PROJECTS+=("$project")
  start=$(now)
  step "podman-compose up qdrant" \
    compose "$project" "$ROOT/deploy/compose.yaml" -- up -d --no-build qdrant
  qcid=$(podman ps -q --filter "label=io.podman.compose.project=$project" \
    --filter "label=io.podman.compose.service=qdrant")
  STEP="qdrant healthy (podman healthcheck run, up to 120 s)"
  for i in $(seq 120); do
    podman healthcheck run "$qcid" > "$LOG" 2>&1 && break
    [ "$i" = 120 ] && fail "qdrant not healthy after 120 s"
    sleep 1
  done
  ok "qdrant server healthy (/readyz)"
  step "ingest examples/corpus into the server (compose run)" \
    compose "$project" "$ROOT/deploy/compose.yaml" -- run --rm --no-deps \
    -v "$ROOT/examples/corpus:/corpus:ro" retriever ingest /corpus
  grep -q 'collection now holds' "$LOG" || fail "no ingest summary"
  ok "ingest into the Qdrant server: $(grep -o '[0-9]* chunks written' "$LOG")"
  step "podman-compose up retriever" \
    compose "$project" "$ROOT/deploy/compose.yaml" "$(port_override retriever "$port")" -- \
    up -d --no-build --no-deps retriever
  cid=$(podman ps -q --filter "label=io.podman.compose.project=$project" \
    --filter "label=io.podman.compose.service=retriever")
  STEP="stack retriever: GET /v1/ready answers 200"
  wait_ready "http://127.0.0.1:$port/v1/ready" "$cid" > /dev/null
  ready=$(since "$start")
  fact compose_stack_ready_s "$ready"
  ok "full stack: /v1/ready 200 on the Qdrant server" "$ready s"
  STEP="stack: POST /v1/search"
  http POST "http://127.0.0.1:$port/v1/search" \
    "$("$PY" -c 'import json, sys; print(json.dumps({"query": sys.argv[1], "k": 5}))' "$QUERY")" \
    > "$LOG"
  [ "$(cat "$WORK/status")" = 200 ] || fail "/v1/search answered $(cat "$WORK/status")"
  expect_hit "$WORK/body" 2>> "$LOG" || fail "/v1/search answered without $EXPECTED_DOC"
  ok "full stack: POST /v1/search 200, $EXPECTED_DOC in the top 3"
  step "podman-compose down -v (stack)" compose "$project" "$ROOT/deploy/compose.yaml" -- down -v -t 10
  remove_project "$project"
}

write_report() {
  [ -n "$REPORT" ] || return 0
  "$PY" - "$WORK/facts" "$WORK/checks" "$REPORT" "$COLD" "$IMAGE" "$WORK" << 'EOF'
import json, os, platform, sys, time
from pathlib import Path
facts_file, checks_file, report, cold, image, work = sys.argv[1:]
facts = {}
for line in Path(facts_file).read_text().splitlines():
    key, _, value = line.partition("=")
    facts[key] = float(value) if "." in value else int(value)
layers = {}
for history in Path(work).glob("history.*"):
    rows = [row.split("@@", 1) for row in history.read_text().splitlines() if "@@" in row]
    layers[history.suffix[1:]] = [
        {"size": size, "created_by": step.removeprefix("/bin/sh -c ")[:160]}
        for size, step in rows
        if not size.startswith("0 ")
    ]
Path(report).write_text(json.dumps({
    "date": time.strftime("%Y-%m-%d %H:%M"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "load_avg_1m_end": round(os.getloadavg()[0], 2),
    "cold": cold == "1",
    "image": image,
    "facts": facts,
    "layers": layers,
    "checks": Path(checks_file).read_text().splitlines(),
}, indent=2) + "\n")
EOF
  say "report: $REPORT"
}

main() {
  case $MODE in
    skip) say "SKIPPED container test (RAGCTL_CONTAINER_TEST=skip)"; exit 0 ;;
    auto | require) ;;
    *) echo "RAGCTL_CONTAINER_TEST=$MODE: use auto, require or skip" >&2; exit 2 ;;
  esac
  install_tools
  install_compose
  configure_engine
  check_disk
  build_debian_image "$(debian_mirror)"
  build_python_image
  fact debian_image_bytes "$(podman image inspect --format '{{.Size}}' "$DEBIAN_IMAGE")"
  fact python_image_bytes "$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")"
  local target tag
  for target in "${TARGETS[@]}"; do
    tag=$IMAGE
    [ "$target" = runtime ] || tag=$IMAGE-$target
    build_project_image "$target" "$tag"
  done
  prune_old_builds
  for target in "${TARGETS[@]}"; do
    tag=$IMAGE
    [ "$target" = runtime ] || tag=$IMAGE-$target
    smoke_test_image "$target" "$tag"
  done
  check_compose_config
  check_compose_embedded
  if [ -n "${QDRANT_IMAGE_TAR:-}" ]; then
    check_compose_stack "$QDRANT_IMAGE_TAR"
  else
    say "--   full stack with a Qdrant server not run: set QDRANT_IMAGE_TAR to an image tarball"
  fi
  fact total_s "$(since "$T0")"
  write_report
  say "container test passed ($(since "$T0") s)"
}

main
