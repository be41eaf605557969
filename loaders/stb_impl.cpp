// The one translation unit that compiles stb_image and stb_image_write.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
// STBI_MAX_DIMENSIONS stays at stb's default (2^24): image_io.cpp checks the size itself, so a
// user sees our "too large" message rather than stb's refusal (see decode_gray).
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace fer::loaders {
// Declared in image_io.cpp; stb keeps its failure reason in this translation unit (thread-local).
void stb_clear_failure_reason() { stbi__g_failure_reason = nullptr; }

// stbi_info_from_memory for one known format (0 PNG, 1 JPEG, 2 BMP, 3 PNM). The generic call tries
// every format in turn and ends with "unknown image type", hiding the reason the right one gave.
int stb_info_as(int format, const unsigned char* data, int len, int* x, int* y, int* comp) {
  stbi__context s;
  stbi__start_mem(&s, data, len);
  switch (format) {
    case 0: return stbi__png_info(&s, x, y, comp);
    case 1: return stbi__jpeg_info(&s, x, y, comp);
    case 2: return stbi__bmp_info(&s, x, y, comp);
    case 3: return stbi__pnm_info(&s, x, y, comp);
  }
  return 0;
}
}  // namespace fer::loaders
