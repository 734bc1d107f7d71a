#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (WebGPU on its SwiftShader adapter). Idempotent; needs root.
# Test tools must never download a browser of their own: playwright-core drives /usr/bin/chromium.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium is already installed: $(chromium --version 2>/dev/null || true)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium: needs root for apt-get (try: sudo bash $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
