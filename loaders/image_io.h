#pragma once
// Image decoding/encoding through stb (compiled once in stb_impl.cpp), with the conversions Keras'
// load_img(color_mode="grayscale", target_size=(48, 48)) applies, so an image folder gives the
// pixels the original project trained on:
//   * colour -> gray with PIL's convert("L") formula, L = R*299/1000 + G*587/1000 + B*114/1000
//     (rounded); an alpha channel is ignored, as PIL does;
//   * resizing with nearest neighbour, flow_from_directory's default interpolation, sampling
//     source pixel floor((x + 0.5) * src / dst) as PIL's NEAREST resize does.
// One step Keras does not take: a JPEG's EXIF Orientation tag (phones store photos sideways and
// set it) is applied after decoding, as PIL's ImageOps.exif_transpose does, so every reader
// (predict, image folders, eval) sees the photo upright. The tag is read with libexif.
//
// Every image file is read through read_gray_image / try_read_gray_image, and every refusal comes
// out as one message: "PATH: cannot read image: REASON", REASON saying which of the ImageFault
// kinds it is in words (too large, truncated, not an image, an unsupported variant, ...).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fer::loaders {

struct GrayImage {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [height, width]
};

constexpr int kMaxImageSide = 16384;                  // larger images are rejected (bounded memory)
constexpr uint64_t kMaxImageFileBytes = 64ULL << 20;  // 64 MiB per image file
// At most this many pixels (PIL's MAX_IMAGE_PIXELS, its decompression-bomb limit): a small file
// may declare a huge image, and each decoder thread would allocate 4 bytes per declared pixel.
constexpr long long kMaxImagePixels = 89478485;

// Bumped whenever decoding gives different pixels for the same file (part of an image folder's
// cache key): 2 = EXIF orientation applied.
constexpr uint32_t kImageDecodeVersion = 2;

// Why an image was refused.
enum class ImageFault : uint8_t {
  unreadable_file,  // missing, a folder, a broken symbolic link, permission denied, I/O error
  empty,            // 0 bytes
  too_large,        // more than kMaxImageSide pixels on a side, or a file over kMaxImageFileBytes
  truncated,        // the file ends before the image data does
  not_an_image,     // no PNG, JPEG, BMP or PGM/PPM signature
  unsupported,      // a known format or variant this reader does not decode (GIF, HEIC, 12-bit JPEG...)
  corrupt,          // the right signature, but the data is damaged
};
const char* image_fault_name(ImageFault f);  // "too large", "truncated", ...

// Thrown by decode_gray: the reason without the file name (the readers below add it).
class ImageDecodeError : public std::runtime_error {
 public:
  ImageDecodeError(ImageFault fault, const std::string& reason)
      : std::runtime_error(reason), fault_(fault) {}
  ImageFault fault() const { return fault_; }

 private:
  ImageFault fault_;
};

// What the header says, after every check decode_gray makes before decoding (signature, truncation,
// the marker/chunk structure, the size limits); throws the same ImageDecodeError decode_gray would.
struct ImageInfo {
  int width = 0, height = 0, channels = 0;
  int format = 0;  // 0 PNG, 1 JPEG, 2 BMP, 3 PGM/PPM
};
ImageInfo probe_image(const uint8_t* data, size_t size);

// Decodes PNG, JPEG, BMP or binary PGM/PPM bytes to 8-bit gray, upright (EXIF orientation applied
// to JPEGs). Throws ImageDecodeError naming the fault kind and the reason in words.
GrayImage decode_gray(const uint8_t* data, size_t size);

// Reads and decodes one image file (decode_gray). Throws fer::UserError
// "PATH: cannot read image: REASON"; *fault (when given) receives the kind first.
GrayImage read_gray_image(const std::string& path, ImageFault* fault = nullptr);

// As read_gray_image, without throwing for a bad image: false with *error set to the same
// "PATH: cannot read image: REASON" message. `buffer` is scratch space reused between calls.
bool try_read_gray_image(const std::string& path, GrayImage* out, std::string* error,
                         std::vector<uint8_t>* buffer = nullptr, ImageFault* fault = nullptr);

// The one message every image refusal uses.
std::string image_error_message(const std::string& path, const std::string& reason);

// The EXIF Orientation (1..8) of JPEG bytes, 1 when the file has no EXIF block, no tag, or a value
// outside 1..8 (as PIL and browsers do). Reads the APP1 segment with libexif; never throws.
int exif_orientation(const uint8_t* data, size_t size);

// The upright image for an EXIF orientation (TIFF 6.0 / EXIF 2.32, tag 0x0112): 1 as stored,
// 2 mirrored left-right, 3 rotated 180 degrees, 4 mirrored top-bottom, 5 transposed (mirrored
// about the main diagonal), 6 rotated 90 degrees clockwise, 7 transversed (mirrored about the
// anti-diagonal), 8 rotated 90 degrees counter-clockwise. 5..8 swap height and width. Values
// outside 1..8 leave the image as it is.
GrayImage apply_exif_orientation(GrayImage in, int orientation);

// Nearest-neighbour resize of an 8-bit gray image (see above).
void resize_nearest(const uint8_t* src, int src_h, int src_w, uint8_t* dst, int dst_h, int dst_w);

// Writers for tests and debugging dumps (channels 1 or 3). Throw std::runtime_error on failure.
void write_png(const std::string& path, int height, int width, int channels, const uint8_t* data);
void write_jpeg(const std::string& path, int height, int width, int channels, const uint8_t* data,
                int quality);

}  // namespace fer::loaders
