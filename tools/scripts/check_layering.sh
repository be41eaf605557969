#!/usr/bin/env bash
# Checks that #include arrows point down the layering of docs/architecture.md:
#   tools/ -> engine/training/, engine/bench/ -> models/, loaders/ -> engine core -> kernels/
# (engine core: engine/ without training/ and bench/, engine/cuda/ included). Prints every
# include that points up or sideways and exits 1; exits 0 when there is none. Run from anywhere;
# ctest runs it as Layering.IncludesPointDown.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Folder -> the include prefixes it may use (besides the standard and third-party headers).
layer_of() {
  case "$1" in
    kernels/*) echo "kernels" ;;
    engine/training/*) echo "training" ;;
    engine/bench/*) echo "bench" ;;
    engine/*) echo "core" ;;
    models/*) echo "models" ;;
    loaders/*) echo "loaders" ;;
    *) echo "" ;;
  esac
}
allowed() {
  case "$1" in
    kernels) echo "kernels/" ;;
    core) echo "kernels/ engine/" ;;
    models) echo "kernels/ engine/ models/" ;;
    loaders) echo "kernels/ engine/ loaders/" ;;
    training) echo "kernels/ engine/ models/ loaders/ engine/training/" ;;
    bench) echo "kernels/ engine/ models/ loaders/ engine/bench/" ;;
  esac
}

status=0
while IFS= read -r file; do
  layer=$(layer_of "$file")
  [ -n "$layer" ] || continue
  while IFS= read -r inc; do
    ok=0
    for prefix in $(allowed "$layer"); do
      [[ "$inc" == "$prefix"* ]] && ok=1
    done
    # engine/ allows only the core: engine/training/ and engine/bench/ sit above it.
    if [[ "$inc" == engine/training/* && "$layer" != training ]] || [[ "$inc" == engine/bench/* && "$layer" != bench ]]; then
      ok=0
    fi
    if [ $ok = 0 ]; then
      echo "$file ($layer) includes $inc"
      status=1
    fi
  done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/p' "$file" | grep -E '^(kernels|engine|models|loaders|tools)/' || true)
done < <(find kernels engine models loaders -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
[ $status = 0 ] && echo "layering: every include of kernels/, engine/, models/, loaders/ points down"
exit $status
