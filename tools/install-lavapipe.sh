#!/usr/bin/env bash
# Installs a Vulkan driver Dawn accepts on a machine without a GPU: Mesa 25's lavapipe from Debian
# bookworm-backports (bookworm's own Mesa 22 is refused by Dawn). Idempotent; needs root (apt).
set -euo pipefail

have_lavapipe() {
  # the ICD file of Mesa's software rasteriser, from a mesa-vulkan-drivers new enough for Dawn
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 25 && ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 \
    && dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'ok installed'
}

if have_lavapipe; then
  echo "lavapipe (Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)) is already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-lavapipe: needs root for apt-get (try: sudo bash $0)" >&2
  exit 1
fi

. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
if ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # the backports suite from the mirror this machine already uses
  uri=$(grep -hoE '^URIs: \S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d' ' -f2 || true)
  [ -n "$uri" ] || uri=$(grep -hoE '^deb\s+\S+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}' || true)
  if [ -z "$uri" ]; then
    echo "install-lavapipe: cannot tell which Debian mirror this machine uses; add ${codename}-backports to apt's sources and rerun" >&2
    exit 1
  fi
  echo "deb $uri ${codename}-backports main" > /etc/apt/sources.list.d/backports.list
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q libvulkan1
apt-get install -y -q -t "${codename}-backports" mesa-vulkan-drivers
have_lavapipe || { echo "install-lavapipe: Mesa lavapipe >= 25 still missing after install" >&2; exit 1; }
echo "lavapipe installed: Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
