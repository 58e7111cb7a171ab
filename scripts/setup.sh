#!/usr/bin/env bash
# Sets up a fresh Debian machine for zbmd: system packages, npm dependencies, the build.
# Safe to run again. Needs root (or sudo) for apt-get; skips apt when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

# libopenblas0-pthread: fast CPU matrix products (through koffi)
# dataset-fashion-mnist: real data at /usr/share/datasets/fashion-mnist/
# chromium: ships SwiftShader, a CPU Vulkan device that Dawn (WebGPU) uses when there is no GPU
# nats-server: the cluster tests start real NATS servers with JetStream on 127.0.0.1
packages=(libopenblas0-pthread dataset-fashion-mnist chromium nats-server)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# `npm install` (not `npm ci`): it keeps the locked versions, and this npm writes lockfiles that
# list only this platform's optional packages, which `npm ci` then rejects as out of sync.
# onnxruntime-node's install script would download GPU binaries (and fail offline); the CPU
# binding ships in the package, so skip the download.
export ONNXRUNTIME_NODE_INSTALL=skip
npm install --no-audit --no-fund
npm run build
