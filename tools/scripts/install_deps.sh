#!/usr/bin/env bash
# Installs what fer_gpu builds against on Debian/Ubuntu. The CUDA toolkit (nvcc, cuDNN, cuBLAS)
# is not installed here: when nvcc is present the CUDA backend is built too. libdnnl-dev (oneDNN)
# is optional: without it the CPU convolutions use im2col + OpenBLAS (FER_ONEDNN=AUTO). So are
# libonnx-dev + libprotobuf-dev (fer_gpu export, FER_ONNX=AUTO) and the OpenCV modules + opencv-data
# (faces found in photos by predict, FER_OPENCV=AUTO). The export tests compare with onnxruntime
# from PyPI, installed with numpy into a venv at build/venv that the test build picks up.
# libopenmpi-dev + openmpi-bin: data-parallel training (mpirun -np N fer_gpu train, FER_MPI=AUTO).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  cmake ninja-build g++ make pkg-config python3 \
  libgtest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libstb-dev libopenblas-dev libdnnl-dev libexif-dev \
  libonnx-dev libprotobuf-dev \
  libopenmpi-dev openmpi-bin \
  libopencv-objdetect-dev libopencv-imgproc-dev libopencv-dnn-dev opencv-data python3-venv
# The sanitizer build and the libFuzzer targets (.ci/sanitize.sh, tests/fuzz) need clang and its
# OpenMP runtime.
$SUDO apt-get install -y --no-install-recommends clang libclang-rt-dev libomp-dev
# onnxruntime for tests/export/onnxruntime_check.py (skipped, visibly, without it).
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ ! -x "$ROOT/build/venv/bin/python3" ]; then python3 -m venv "$ROOT/build/venv"; fi
"$ROOT/build/venv/bin/python3" -m pip install --quiet --disable-pip-version-check onnxruntime numpy
