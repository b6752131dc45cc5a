#!/usr/bin/env bash
# Idempotent set-up for building and testing mathrl on Debian/Ubuntu:
#   * Debian packages (compiler, CMake, Lua 5.4, SentencePiece, RapidJSON, GoogleTest, PCRE2, utf8proc, ccache)
#   * a venv with the PyPI torch==2.11.0 wheel (our LibTorch) under ~/.cache/mathrl, outside the clone,
#     so CI and later clones reuse it. A user's own LibTorch (Torch_DIR) is used instead when set.
# Options: --dev also installs the Python packages the fixture scripts use (transformers, tokenizers...).
set -euo pipefail

TORCH_VERSION=2.11.0
CACHE_DIR="${MATHRL_CACHE:-$HOME/.cache/mathrl}"
VENV="$CACHE_DIR/venv"
DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "setup.sh: unknown option '$arg' (known: --dev)" >&2; exit 2 ;;
  esac
done

PACKAGES=(build-essential cmake ninja-build pkg-config ccache git python3 python3-venv
          liblua5.4-dev libsentencepiece-dev rapidjson-dev libgtest-dev libpcre2-dev libutf8proc-dev
          libgloo-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -n "${Torch_DIR:-}" ]; then
  echo "setup: using LibTorch from Torch_DIR=$Torch_DIR"
else
  # python3 -m venv needs ensurepip; pyenv/system pythons both work.
  if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$CACHE_DIR"
    python3 -m venv "$VENV"
  fi
  have=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
  if [ "$have" != "$TORCH_VERSION" ]; then
    echo "setup: installing torch==$TORCH_VERSION into $VENV (once; several GB)"
    "$VENV/bin/python" -m pip install -q --progress-bar off "torch==$TORCH_VERSION"
  fi
  if [ "$DEV" = 1 ]; then
    "$VENV/bin/python" -m pip install -q --progress-bar off transformers tokenizers sentencepiece safetensors numpy
  fi
fi
echo "setup: ok"
