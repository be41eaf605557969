// fer_export_random_checkpoint CONFIG OUT.ckpt SEED: a checkpoint with random weights (see
// random_checkpoint.h) for the onnxruntime comparison script, which has no other way to get one.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "tests/export/random_checkpoint.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s CONFIG OUT.ckpt SEED\n", argv[0]);
    return 2;
  }
  try {
    fer::testing::write_random_checkpoint(argv[1], argv[2], uint32_t(std::strtoul(argv[3], nullptr, 10)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
