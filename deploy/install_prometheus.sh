#!/usr/bin/env bash
# Install Prometheus and promtool from Debian's `prometheus` package when missing.
# Idempotent; never starts (or leaves enabled) the system service: tests run their
# own Prometheus on 127.0.0.1 with a temporary config (tests/prometheus_support.py).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus already installed: $(command -v prometheus)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# policy-rc.d exiting 101 tells invoke-rc.d / deb-systemd-invoke not to start
# services during the install. Only add one if none exists, and remove it after.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ADDED_POLICY=1
fi
cleanup() {
    if [ "$ADDED_POLICY" = 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus

# On a machine that runs systemd the package enables the unit: keep it off.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi

prometheus --version | head -1
promtool --version | head -1
