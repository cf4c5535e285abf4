#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, unpacked into the cache
# ($POLYCULTURE_CACHE/bin/{prometheus,promtool}-<version>) without installing the package or
# starting its service; and the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs
# from its Go module (for the chart's server-side dry run). What exists is reused.
set -euo pipefail
CACHE="${POLYCULTURE_CACHE:-$HOME/.cache/polyculture}"
BIN="$CACHE/bin"
WORK="$CACHE/build/prometheus"
log() { printf '[prometheus %(%H:%M:%S)T] %s\n' -1 "$*"; }

PROM_OPERATOR_VERSION=v0.85.0
CRDS="$CACHE/crds/prometheus-operator-$PROM_OPERATOR_VERSION"

fetch_crds() {
  [[ -s "$CRDS/monitoring.coreos.com_servicemonitors.yaml" ]] && return
  local dir
  dir="$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$CRDS"
  for kind in servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$CRDS/"
  done
  chmod -R u+w "$CRDS"
  log "Prometheus Operator CRDs $PROM_OPERATOR_VERSION in $CRDS"
}

fetch_crds
if compgen -G "$BIN/promtool-*" >/dev/null && compgen -G "$BIN/prometheus-*" >/dev/null; then
  log "cached: $(ls "$BIN"/prometheus-* | head -1)"
  exit 0
fi
mkdir -p "$BIN" "$WORK"
cd "$WORK"
rm -f ./*.deb
if ! apt-get download prometheus >/dev/null 2>&1; then
  log "apt-get download failed; refreshing the package lists"
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq; else sudo -n apt-get update -qq; fi
  apt-get download prometheus
fi
deb="$(ls prometheus_*.deb | head -1)"
version="$(dpkg-deb -f "$deb" Version)"
version="${version%%+*}"
rm -rf root && dpkg-deb -x "$deb" root
for tool in prometheus promtool; do
  install -m 0755 "root/usr/bin/$tool" "$BIN/$tool-$version.tmp"
  mv "$BIN/$tool-$version.tmp" "$BIN/$tool-$version"
done
log "prometheus and promtool $version in $BIN"
