#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, unpacked into the cache
# ($POLYCULTURE_CACHE/bin/{prometheus,promtool}-<version>) without installing the package or
# starting its service. What exists is reused.
set -euo pipefail
CACHE="${POLYCULTURE_CACHE:-$HOME/.cache/polyculture}"
BIN="$CACHE/bin"
WORK="$CACHE/build/prometheus"
log() { printf '[prometheus %(%H:%M:%S)T] %s\n' -1 "$*"; }

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
