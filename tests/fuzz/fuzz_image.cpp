// libFuzzer target: image decoding as every reader does it (loaders/image_io.h decode_gray: format
// sniffing, truncation checks, stb's PNG/JPEG/BMP/PGM decoders, EXIF orientation through libexif)
// plus the resize to the model input. A bad image must end in ImageDecodeError.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "loaders/image_io.h"

namespace {
// decode_gray accepts up to kMaxImagePixels (89 M) pixels; inputs whose (valid) header asks for more
// than this are only probed, so the fuzzer spends its time on parser states rather than on
// allocating and filling hundreds of megabytes.
constexpr long long kMaxDecodePixels = 4LL << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const fer::loaders::ImageInfo info = fer::loaders::probe_image(data, size);
    if ((long long)info.width * info.height > kMaxDecodePixels) return 0;
  } catch (const fer::loaders::ImageDecodeError&) {
  }
  (void)fer::loaders::exif_orientation(data, size);
  try {
    const fer::loaders::GrayImage g = fer::loaders::decode_gray(data, size);
    if (g.height <= 0 || g.width <= 0 || g.pixels.size() != size_t(g.height) * size_t(g.width)) std::abort();
    std::vector<uint8_t> out(48 * 48);
    fer::loaders::resize_nearest(g.pixels.data(), g.height, g.width, out.data(), 48, 48);
  } catch (const fer::loaders::ImageDecodeError&) {
  }
  return 0;
}
