#!/usr/bin/env bash
# What `cohesix bench simulate` needs besides the Rust build: a font file for
# the text of its graphs (Debian's fonts-dejavu-core). Without it the graphs
# are still drawn, without text.
set -euo pipefail
if [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq fonts-dejavu-core
