#include "loaders/image_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include <libexif/exif-data.h>
#include <stb_image.h>
#include <stb_image_write.h>

#include "engine/error.h"
#include "loaders/text_util.h"

namespace fer::loaders {

// stb_impl.cpp: forgets the thread's last stb failure reason, so that a refusal stb does not
// explain (it returns failure without setting a reason on a few paths) is not blamed on an older one.
void stb_clear_failure_reason();
// stb_impl.cpp: stbi_info_from_memory for one format (Format's order), keeping that format's reason.
int stb_info_as(int format, const unsigned char* data, int len, int* x, int* y, int* comp);

namespace {

enum class Format { png, jpeg, bmp, pnm };

bool starts_with(const uint8_t* d, size_t n, const char* magic, size_t m) {
  return n >= m && std::memcmp(d, magic, m) == 0;
}

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | uint32_t(p[0]);
}
uint16_t le16(const uint8_t* p) { return uint16_t(p[1] << 8 | p[0]); }

[[noreturn]] void fail(ImageFault f, const std::string& why) { throw ImageDecodeError(f, why); }

// The format from the signature, or an ImageDecodeError naming what the bytes are instead: a
// format users meet (GIF, WebP, TIFF, HEIC from iPhones) is "unsupported", anything else "not an
// image". Signatures: PNG spec 5.2, JFIF/ITU T.81 B.1.1.2 (SOI + a marker), BMP "BM", Netpbm P5/P6.
Format sniff(const uint8_t* d, size_t n) {
  static const char kPng[] = "\x89PNG\r\n\x1a\n";
  if (starts_with(d, n, kPng, 8)) return Format::png;
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return Format::jpeg;
  if (starts_with(d, n, "BM", 2)) return Format::bmp;
  if (n >= 2 && d[0] == 'P') {
    if (d[1] == '5' || d[1] == '6') return Format::pnm;
    if (d[1] >= '1' && d[1] <= '4') {
      fail(ImageFault::unsupported, std::string("unsupported Netpbm variant P") + char(d[1]) +
                                        " (plain-text or 1-bit); only binary PGM (P5) and PPM (P6) are read");
    }
  }
  const char* other = nullptr;
  if (starts_with(d, n, "GIF87a", 6) || starts_with(d, n, "GIF89a", 6)) other = "GIF";
  if (n >= 12 && starts_with(d, n, "RIFF", 4) && std::memcmp(d + 8, "WEBP", 4) == 0) other = "WebP";
  if (starts_with(d, n, "II*\0", 4) || starts_with(d, n, "MM\0*", 4)) other = "TIFF";
  if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) {
    other = std::memcmp(d + 8, "avif", 4) == 0 ? "AVIF" : "HEIF/HEIC (or another ISO media file)";
  }
  if (other) {
    fail(ImageFault::unsupported, std::string("unsupported format ") + other +
                                      " (convert it to PNG or JPEG; this reader takes PNG, JPEG, BMP, PGM/PPM)");
  }
  fail(ImageFault::not_an_image,
       "not an image: no PNG, JPEG, BMP or PGM/PPM signature (the file starts with " +
           quoted_excerpt(reinterpret_cast<const char*>(d), n, 16) + ")");
}

// A JPEG's marker structure (ITU T.81 B.1): segments with a 2-byte length, entropy-coded data after
// each SOS, where FF is always followed by 00 (stuffing) or a restart marker D0..D7, and EOI (FF D9)
// at the end. Refused before stb runs: a segment or scan that the file ends inside (truncated),
// and a Huffman table (DHT, B.2.4.2) declaring more than 256 codes, which stb 2.27 does not check
// and writes past its 257-entry table for (found by tests/fuzz/fuzz_image; regression input in
// tests/fuzz/regressions/image/).
void check_jpeg(const uint8_t* d, size_t n) {
  const std::string truncated = "truncated: the file ends before the image data does";
  size_t p = 2;
  bool in_scan = false;
  while (p + 1 < n) {
    if (d[p] != 0xFF) {  // scan data, or junk between segments, which stb also skips to the next FF
      ++p;
      continue;
    }
    const uint8_t m = d[p + 1];
    if (m == 0xFF) {  // fill byte
      ++p;
      continue;
    }
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xD8) {  // no length field
      p += 2;
      continue;
    }
    if (m == 0xD9) return;  // EOI: complete
    if (n - p < 4) fail(ImageFault::truncated, truncated);
    const size_t len = size_t(d[p + 2]) << 8 | d[p + 3];
    if (len < 2) fail(ImageFault::corrupt, "damaged JPEG data (a marker segment of length " + std::to_string(len) + ")");
    if (n - p - 2 < len) fail(ImageFault::truncated, truncated);
    if (m == 0xC4) {  // DHT: one or more tables of (class/id, 16 counts, values)
      size_t q = p + 4;
      const size_t end = p + 2 + len;
      while (q < end) {  // as stb: another table while bytes of the segment remain, read on past it
        unsigned codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += q + i < n ? d[q + i] : 0;  // stb reads 0 past the end
        if (codes > 256) {
          fail(ImageFault::corrupt, "damaged JPEG data (a Huffman table declares " + std::to_string(codes) +
                                        " codes, at most 256 exist)");
        }
        q += 17 + codes;
      }
    }
    in_scan = m == 0xDA;
    p += 2 + len;
  }
  fail(ImageFault::truncated, truncated + (in_scan ? " (no end-of-image marker after the scan)" : ""));
}

// A binary PGM/PPM header (Netpbm): magic, width, height, maxval as decimal numbers separated by
// whitespace and # comments, then one whitespace byte. Returns where the samples start (past the
// end when the header is cut short) and *maxval. A number of 10 or more digits is refused here:
// stb 2.27 parses it into an int without an overflow check (undefined behaviour, found by
// tests/fuzz/fuzz_image; regression input in tests/fuzz/regressions/image/).
size_t pnm_header(const uint8_t* d, size_t n, long long* maxval) {
  size_t p = 2;
  long long value[3] = {0, 0, 0};
  for (int field = 0; field < 3; ++field) {
    for (;;) {  // whitespace and # comments, as stb skips them
      while (p < n && d[p] != 0 && std::strchr(" \t\n\v\f\r", d[p])) ++p;
      if (p < n && d[p] == '#') {
        while (p < n && d[p] != '\n' && d[p] != '\r') ++p;
      } else {
        break;
      }
    }
    int digits = 0;
    for (; p < n && d[p] >= '0' && d[p] <= '9'; ++p, ++digits) {
      if (digits == 9) {
        if (field < 2) fail(ImageFault::too_large, "too large: the PGM/PPM header gives a side of 10 or more digits");
        fail(ImageFault::unsupported, "unsupported PGM/PPM variant (a maximum sample value of 10 or more digits)");
      }
      value[field] = value[field] * 10 + (d[p] - '0');
    }
  }
  *maxval = value[2];
  return p + 1;  // the single whitespace before the samples
}

// Truncation is checked before stb sees the bytes because stb does not always notice it: a JPEG
// cut inside its scan data or a BMP/PNM cut in its pixels decode "successfully" with made-up
// pixels. Each check reads only the container structure.
//   PNG: every chunk (length, type, data, CRC) must fit in the file and an IEND chunk must come.
//   JPEG: every marker segment must fit and an EOI marker must end the last scan (check_jpeg).
//   BMP: uncompressed rows ((width * bpp + 31) / 32 * 4 bytes each) must fit after bfOffBits.
//   PNM: the header (magic, width, height, maxval, one whitespace) plus the samples must fit.
void check_complete(Format fmt, const uint8_t* d, size_t n, int w, int h, int comp) {
  const char* const kTruncated = "truncated: the file ends before the image data does";
  switch (fmt) {
    case Format::png: {
      size_t p = 8;
      for (;;) {
        if (n - p < 12) fail(ImageFault::truncated, std::string(kTruncated) + " (no IEND chunk)");
        const uint64_t len = be32(d + p);
        if (uint64_t(n - p) - 12 < len) fail(ImageFault::truncated, kTruncated);
        const bool iend = std::memcmp(d + p + 4, "IEND", 4) == 0;
        p += size_t(len) + 12;
        if (iend) return;
      }
    }
    case Format::jpeg:
      check_jpeg(d, n);
      return;
    case Format::bmp: {
      if (n < 34) fail(ImageFault::truncated, kTruncated);
      const uint64_t offset = le32(d + 10);
      const uint32_t compression = le32(d + 30);
      const uint64_t bpp = le16(d + 28);
      if (le32(d + 14) < 40 || (compression != 0 && compression != 3)) return;  // RLE etc.: stb decides
      const uint64_t row = (uint64_t(w) * bpp + 31) / 32 * 4;
      if (offset + row * uint64_t(h) > n) fail(ImageFault::truncated, kTruncated);
      return;
    }
    case Format::pnm: {
      long long maxval = 0;
      const size_t p = pnm_header(d, n, &maxval);
      const uint64_t bytes_per_sample = maxval > 255 ? 2 : 1;
      const uint64_t need = uint64_t(w) * uint64_t(h) * uint64_t(comp) * bytes_per_sample;
      if (p > n || n - p < need) fail(ImageFault::truncated, kTruncated);
      return;
    }
  }
}

// stb's failure reasons (its short stbi__err codes) sorted into our kinds.
ImageFault classify_stb_reason(const std::string& why) {
  if (why == "too large" || why == "outofmem") return ImageFault::too_large;
  if (why == "outofdata" || why == "not enough pixels" || why == "read past buffer" || why == "no IDAT" ||
      why == "no SOF" || why == "expected marker") {
    return ImageFault::truncated;
  }
  if (why == "1/2/4/8/16-bit only" || why == "only 8-bit" || why == "no header height" ||
      why == "BMP RLE" || why == "BMP JPEG/PNG" || why == "unknown BMP" || why == "bad BMP" ||
      why == "bad bpp" || why == "max value > 65535" || why == "unsupported" || why == "unsupported bit depth" ||
      why == "invalid_chunk" || why.rfind("PNG not supported", 0) == 0) {
    return ImageFault::unsupported;
  }
  return ImageFault::corrupt;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::png: return "PNG";
    case Format::jpeg: return "JPEG";
    case Format::bmp: return "BMP";
    case Format::pnm: return "PGM/PPM";
  }
  return "image";
}

[[noreturn]] void fail_from_stb(Format fmt, const char* stage) {
  const char* r = stbi_failure_reason();
  const std::string why = r ? r : "no reason given";
  const ImageFault f = classify_stb_reason(why);
  std::string text;
  switch (f) {
    case ImageFault::too_large:
      text = std::string("too large: the ") + format_name(fmt) + " header gives a size the decoder refuses";
      break;
    case ImageFault::truncated:
      text = "truncated: the file ends before the image data does";
      break;
    case ImageFault::unsupported:
      text = std::string("unsupported ") + format_name(fmt) + " variant";
      break;
    default:
      text = std::string("damaged ") + format_name(fmt) + " data";
  }
  fail(f, text + " (decoder: " + why + ", while " + stage + ")");
}

struct ExifDeleter {
  void operator()(ExifData* d) const { exif_data_unref(d); }
};

}  // namespace

const char* image_fault_name(ImageFault f) {
  switch (f) {
    case ImageFault::unreadable_file: return "unreadable file";
    case ImageFault::empty: return "empty file";
    case ImageFault::too_large: return "too large";
    case ImageFault::truncated: return "truncated";
    case ImageFault::not_an_image: return "not an image";
    case ImageFault::unsupported: return "unsupported variant";
    case ImageFault::corrupt: return "damaged";
  }
  return "?";
}

std::string image_error_message(const std::string& path, const std::string& reason) {
  return path + ": cannot read image: " + reason;
}

int exif_orientation(const uint8_t* data, size_t size) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return 1;
  std::unique_ptr<ExifData, ExifDeleter> ed(exif_data_new());
  if (!ed) return 1;
  // Read the stored value as it is: FOLLOW_SPECIFICATION would "fix" the data on load.
  exif_data_unset_option(ed.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  // libexif takes an unsigned int size; an image file is capped at 64 MiB before this is called.
  exif_data_load_data(ed.get(), data, static_cast<unsigned int>(size));
  ExifEntry* e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
  if (!e || e->format != EXIF_FORMAT_SHORT || e->components < 1 || !e->data || e->size < 2) return 1;
  const int v = exif_get_short(e->data, exif_data_get_byte_order(ed.get()));
  return v >= 1 && v <= 8 ? v : 1;
}

GrayImage apply_exif_orientation(GrayImage in, int orientation) {
  if (orientation < 2 || orientation > 8) return in;
  const int H = in.height, W = in.width;
  const bool swap = orientation >= 5;
  GrayImage out;
  out.height = swap ? W : H;
  out.width = swap ? H : W;
  out.pixels.resize(in.pixels.size());
  const uint8_t* s = in.pixels.data();
  // D(r, c) = S(sr, sc): for each orientation, which stored pixel is shown at row r, column c.
  for (int r = 0; r < out.height; ++r) {
    uint8_t* row = out.pixels.data() + size_t(r) * size_t(out.width);
    for (int c = 0; c < out.width; ++c) {
      int sr = r, sc = c;
      switch (orientation) {
        case 2: sc = W - 1 - c; break;                     // mirror left-right
        case 3: sr = H - 1 - r; sc = W - 1 - c; break;     // rotate 180
        case 4: sr = H - 1 - r; break;                     // mirror top-bottom
        case 5: sr = c; sc = r; break;                     // transpose
        case 6: sr = H - 1 - c; sc = r; break;             // rotate 90 clockwise
        case 7: sr = H - 1 - c; sc = W - 1 - r; break;     // transverse
        case 8: sr = c; sc = W - 1 - r; break;             // rotate 90 counter-clockwise
      }
      row[c] = s[size_t(sr) * size_t(W) + size_t(sc)];
    }
  }
  return out;
}

ImageInfo probe_image(const uint8_t* data, size_t size) {
  if (size == 0) fail(ImageFault::empty, "empty file (0 bytes)");
  if (size > size_t(kMaxImageFileBytes)) {
    fail(ImageFault::too_large, "too large: the file has " + with_thousands((long long)size) +
                                    " bytes, more than the 64 MiB an image may have");
  }
  const Format fmt = sniff(data, size);
  int w = 0, h = 0, channels = 0;
  if (fmt == Format::png || fmt == Format::jpeg) check_complete(fmt, data, size, 0, 0, 0);
  if (fmt == Format::pnm) {
    long long maxval = 0;
    (void)pnm_header(data, size, &maxval);  // refuses numbers stb cannot parse safely
  }
  // stb's own dimension cap is left at its default (2^24) so that our size message, below, is the
  // one a user sees for any image it can still describe.
  stb_clear_failure_reason();
  if (!stb_info_as(int(fmt), data, int(size), &w, &h, &channels)) fail_from_stb(fmt, "reading the header");
  if (w <= 0 || h <= 0) fail(ImageFault::corrupt, std::string("damaged ") + format_name(fmt) + " header (zero size)");
  if (w > kMaxImageSide || h > kMaxImageSide || int64_t(w) * h > kMaxImagePixels) {
    fail(ImageFault::too_large, "too large: " + std::to_string(w) + "x" + std::to_string(h) +
                                    " pixels (width x height); this reader accepts at most " +
                                    std::to_string(kMaxImageSide) + " pixels per side and " +
                                    with_thousands(kMaxImagePixels) + " pixels in all");
  }
  if (fmt == Format::bmp || fmt == Format::pnm) check_complete(fmt, data, size, w, h, channels);
  return ImageInfo{w, h, channels, int(fmt)};
}

GrayImage decode_gray(const uint8_t* data, size_t size) {
  const ImageInfo info = probe_image(data, size);
  const Format fmt = Format(info.format);
  int w = 0, h = 0, channels = 0;
  stb_clear_failure_reason();
  unsigned char* px = stbi_load_from_memory(data, int(size), &w, &h, &channels, 0);
  if (!px) fail_from_stb(fmt, "decoding");
  GrayImage out;
  out.height = h;
  out.width = w;
  const size_t n = size_t(w) * size_t(h);
  out.pixels.resize(n);
  if (channels <= 2) {  // gray or gray+alpha: the gray channel
    for (size_t i = 0; i < n; ++i) out.pixels[i] = px[i * size_t(channels)];
  } else {  // RGB or RGBA: ITU-R 601-2 luma, rounded
    for (size_t i = 0; i < n; ++i) {
      const unsigned char* p = px + i * size_t(channels);
      out.pixels[i] = uint8_t((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
    }
  }
  stbi_image_free(px);
  if (fmt == Format::jpeg) return apply_exif_orientation(std::move(out), exif_orientation(data, size));
  return out;
}

bool try_read_gray_image(const std::string& path, GrayImage* out, std::string* error,
                         std::vector<uint8_t>* buffer, ImageFault* fault) {
  std::vector<uint8_t> local;
  std::vector<uint8_t>& bytes = buffer ? *buffer : local;
  auto refuse = [&](ImageFault f, const std::string& why) {
    if (fault) *fault = f;
    *error = image_error_message(path, why);
    return false;
  };
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
      char target[4096];
      const ssize_t len = ::readlink(path.c_str(), target, sizeof target - 1);
      std::string why = "broken symbolic link (its target ";
      if (len > 0) why.append("'").append(target, size_t(len)).append("' ");
      return refuse(ImageFault::unreadable_file, why + "does not exist)");
    }
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return refuse(ImageFault::unreadable_file, std::strerror(errno));
  struct stat st {};
  std::string why;
  ImageFault f = ImageFault::unreadable_file;
  if (::fstat(fd, &st) != 0) {
    why = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    why = S_ISDIR(st.st_mode) ? "a folder, not an image file" : "not a regular file";
  } else if (uint64_t(st.st_size) > kMaxImageFileBytes) {
    f = ImageFault::too_large;
    why = "too large: the file has " + with_thousands((long long)st.st_size) +
          " bytes, more than the 64 MiB an image may have";
  } else {
    bytes.resize(size_t(st.st_size));
    size_t done = 0;
    while (why.empty() && done < bytes.size()) {
      const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) why = std::strerror(errno);
      if (got == 0) bytes.resize(done);  // shrank while reading: decode what is there
      if (got > 0) done += size_t(got);
    }
  }
  ::close(fd);
  if (!why.empty()) return refuse(f, why);
  try {
    *out = decode_gray(bytes.data(), bytes.size());
  } catch (const ImageDecodeError& e) {
    return refuse(e.fault(), e.what());
  } catch (const std::bad_alloc&) {  // a size within the limits, but not in this machine's memory
    return refuse(ImageFault::too_large, "too large: not enough memory to decode it");
  }
  return true;
}

GrayImage read_gray_image(const std::string& path, ImageFault* fault) {
  GrayImage img;
  std::string error;
  if (!try_read_gray_image(path, &img, &error, nullptr, fault)) throw UserError(error);
  return img;
}

void resize_nearest(const uint8_t* src, int src_h, int src_w, uint8_t* dst, int dst_h, int dst_w) {
  std::vector<int> cols(static_cast<size_t>(dst_w));
  for (int x = 0; x < dst_w; ++x) {
    int sx = int((double(x) + 0.5) * double(src_w) / double(dst_w));
    cols[size_t(x)] = sx < src_w ? sx : src_w - 1;
  }
  for (int y = 0; y < dst_h; ++y) {
    int sy = int((double(y) + 0.5) * double(src_h) / double(dst_h));
    if (sy >= src_h) sy = src_h - 1;
    const uint8_t* row = src + size_t(sy) * size_t(src_w);
    for (int x = 0; x < dst_w; ++x) dst[size_t(y) * size_t(dst_w) + size_t(x)] = row[cols[size_t(x)]];
  }
}

void write_png(const std::string& path, int height, int width, int channels, const uint8_t* data) {
  if (!stbi_write_png(path.c_str(), width, height, channels, data, width * channels)) {
    throw std::runtime_error(path + ": cannot write PNG");
  }
}

void write_jpeg(const std::string& path, int height, int width, int channels, const uint8_t* data,
                int quality) {
  if (!stbi_write_jpg(path.c_str(), width, height, channels, data, quality)) {
    throw std::runtime_error(path + ": cannot write JPEG");
  }
}

}  // namespace fer::loaders
