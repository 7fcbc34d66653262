#!/usr/bin/env bash
# Installs the Debian packages the v9fs acceptance test needs (idempotent).
# The kernel image is not installed: run.sh fetches and unpacks it itself.
set -euo pipefail

pkgs=(qemu-system-x86 busybox-static cpio xz-utils gzip zstd ca-certificates)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi

# run.sh resolves the kernel via apt-cache; that needs package lists.
lists_present=0
if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    lists_present=1
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$lists_present" -eq 0 ]; then
    timeout 300 "${sudo_cmd[@]}" apt-get update -qq
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo_cmd[@]}" \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "install-deps: all packages present"
fi
