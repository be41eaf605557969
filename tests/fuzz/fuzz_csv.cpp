// libFuzzer target: the Kaggle CSV reader (loaders/csv_reader.h) on arbitrary bytes. A bad file
// must end in fer::UserError; anything else (a crash, a sanitizer report, another exception) is a
// bug. One parser thread keeps runs reproducible; the first byte picks 1 or 2 threads so the
// chunk-splitting path is fuzzed too.
#include <cstddef>
#include <cstdint>

#include "engine/error.h"
#include "loaders/csv_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int threads = size > 0 && (data[0] & 1) ? 2 : 1;
  try {
    fer::loaders::parse_kaggle_csv(reinterpret_cast<const char*>(data), size, "fuzz.csv", threads);
  } catch (const fer::UserError&) {
  }
  return 0;
}
