#!/usr/bin/env bash
# Builds the bundle that runs `xtask gpu-check` on a machine with an NVIDIA GPU, no Rust
# and no network (only the driver, CUDA and PyTorch): the stripped, xz-compressed cuda
# xtask plus only the files the check reads, in one tar.xz that must fit a 64 MiB transfer.
#
#   scripts/gpu-check-bundle.sh [OUT.tar.xz]       # default: target/gpu-check-bundle.tar.xz
#   scripts/gpu-check-bundle.sh --list             # only list the files the check needs
#
# On the GPU machine:
#   tar xJf gpu-check-bundle.tar.xz && cd gpu-check && unxz xtask.xz && chmod +x xtask
#   ./xtask gpu-check --root .          # add --python /path/to/python if python3 lacks torch
set -euo pipefail
cd "$(dirname "$0")/.."

# What gpu-check reads, relative to --root (see xtask/src/gpu_check.rs).
FILES=(
  tests/fixtures/maple-tiny
  tests/fixtures/methods-tiny
  weights/toy-clip.safetensors
  weights/toy-clip.json
  bench/torch_maple.py
)
LIMIT=$((64 * 1024 * 1024))

if [[ "${1:-}" == "--list" ]]; then
  for f in "${FILES[@]}"; do
    if [[ -e "$f" ]]; then du -sh "$f"; else echo "missing: $f" >&2; exit 1; fi
  done
  exit 0
fi
OUT="${1:-target/gpu-check-bundle.tar.xz}"

for f in "${FILES[@]}"; do
  [[ -e "$f" ]] || { echo "missing: $f (run from a full checkout)" >&2; exit 1; }
done

echo "building the cuda xtask (release, no GPU needed to build)"
cargo build --release --locked -p xtask --no-default-features --features cuda

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/gpu-check"
cp target/release/xtask "$STAGE/gpu-check/xtask"
strip "$STAGE/gpu-check/xtask"
xz -9 -T0 "$STAGE/gpu-check/xtask"
for f in "${FILES[@]}"; do
  mkdir -p "$STAGE/gpu-check/$(dirname "$f")"
  cp -r "$f" "$STAGE/gpu-check/$f"
done
mkdir -p "$(dirname "$OUT")"
# The binary is already xz-compressed; the fixtures are float data (xz gains little).
tar -C "$STAGE" -cJf "$OUT" gpu-check
size=$(stat -c %s "$OUT")
echo "binary (stripped, xz): $(du -h "$STAGE/gpu-check/xtask.xz" | cut -f1)"
echo "bundle: $OUT, $((size / 1024 / 1024)) MiB ($size bytes), limit 64 MiB"
if (( size > LIMIT )); then
  echo "the bundle exceeds 64 MiB: drop methods-tiny from FILES (gpu-check skips it when absent)" >&2
  exit 1
fi
