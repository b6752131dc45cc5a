#!/usr/bin/env bash
# Downloads the Debian packages that scripts/gpu_build.sh unpacks on a machine with no registry.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs
cd .debs
apt-get download liblua5.4-0 liblua5.4-dev libsentencepiece0 libsentencepiece-dev rapidjson-dev \
  libgtest-dev googletest libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 \
  libutf8proc2 libutf8proc-dev libprotobuf-lite32 libgloo-dev
