#!/usr/bin/env bash
# Installs what fer_gpu builds against on Debian/Ubuntu. The CUDA toolkit (nvcc, cuDNN, cuBLAS)
# is not installed here: when nvcc is present the CUDA backend is built too. libdnnl-dev (oneDNN)
# is optional: without it the CPU convolutions use im2col + OpenBLAS (FER_ONEDNN=AUTO).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  cmake ninja-build g++ make pkg-config python3 \
  libgtest-dev libtomlplusplus-dev libcli11-dev libstb-dev libopenblas-dev libdnnl-dev libexif-dev
# The sanitizer build and the libFuzzer targets (.ci/sanitize.sh, tests/fuzz) need clang and its
# OpenMP runtime.
$SUDO apt-get install -y --no-install-recommends clang libclang-rt-dev libomp-dev
