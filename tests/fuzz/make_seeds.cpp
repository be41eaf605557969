// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs of
// every format each parser reads, made with the project's own writers (and libexif for the EXIF
// block), so a seed follows the formats when they change. Run from the source root:
//   build-san/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/training/checkpoint.h"
#include "loaders/cache.h"
#include "loaders/image_io.h"
#include "tests/common/temp_files.h"
#include "tests/loaders/image_fixtures.h"

namespace fs = std::filesystem;
using fer::test_files::read_file;
using fer::test_files::write_file;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  fer::test_files::TempDir tmp("fer_seeds");

  // image: PNG gray/RGB, JPEG plain and with EXIF orientation 6 (both byte orders), BMP, PGM, PPM.
  {
    const std::string d = out + "/image/";
    std::vector<uint8_t> gray(16 * 16), rgb(16 * 16 * 3);
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = uint8_t(i * 7);
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 13);
    fer::loaders::write_png(tmp / "g.png", 16, 16, 1, gray.data());
    write_file(d + "gray.png", read_file(tmp / "g.png"));
    fer::loaders::write_png(tmp / "c.png", 16, 16, 3, rgb.data());
    write_file(d + "rgb.png", read_file(tmp / "c.png"));
    const std::string jpeg = fer::loaders::fixtures::jpeg_bytes(tmp / "g.jpg", 16, 16, gray, 75);
    write_file(d + "gray.jpg", jpeg);
    write_file(d + "exif6_ii.jpg",
               fer::loaders::fixtures::with_exif(jpeg, fer::loaders::fixtures::exif_block(6, EXIF_BYTE_ORDER_INTEL)));
    write_file(d + "exif3_mm.jpg",
               fer::loaders::fixtures::with_exif(jpeg, fer::loaders::fixtures::exif_block(3, EXIF_BYTE_ORDER_MOTOROLA)));
    fer::loaders::write_jpeg(tmp / "c.jpg", 16, 16, 3, rgb.data(), 75);
    write_file(d + "rgb.jpg", read_file(tmp / "c.jpg"));
    std::string bmp = "BM";  // 2x2 24-bit, BITMAPINFOHEADER, rows padded to 4 bytes
    const unsigned char hdr[] = {70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24,
                                 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    bmp.append(reinterpret_cast<const char*>(hdr), sizeof hdr);
    bmp.append("\x10\x20\x30\x40\x50\x60\0\0\x70\x80\x90\xa0\xb0\xc0\0\0", 16);
    write_file(d + "rgb.bmp", bmp);
    write_file(d + "gray.pgm", "P5\n# seed\n4 2\n255\n" + std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
    write_file(d + "rgb.ppm", "P6 2 1 255 " + std::string("\x10\x20\x30\x40\x50\x60", 6));
  }
  // csv: the three header layouts, two rows each (from the committed sample).
  {
    const std::string d = out + "/csv/";
    const std::string sample = read_file(std::string(FER_SOURCE_DIR) + "/data/sample/fer2013_sample.csv");
    size_t l1 = sample.find('\n'), l2 = sample.find('\n', l1 + 1), l3 = sample.find('\n', l2 + 1);
    const std::string rows = sample.substr(l1 + 1, l3 - l1);
    write_file(d + "fer2013.csv", sample.substr(0, l1 + 1) + rows);
    std::string icml = "emotion, Usage, pixels\r\n";  // Kaggle's other layout, CRLF
    for (size_t p = 0; p < rows.size();) {
      const size_t e = rows.find('\n', p);
      const std::string line = rows.substr(p, e - p);
      const size_t c1 = line.find(','), c2 = line.rfind(',');
      icml += line.substr(0, c1) + ", " + line.substr(c2 + 1) + ", " + line.substr(c1 + 1, c2 - c1 - 1) + "\r\n";
      p = e + 1;
    }
    write_file(d + "icml.csv", icml);
    const size_t c1 = rows.find(','), c2 = rows.find(',', c1 + 1);
    write_file(d + "pixels_only.csv", "pixels\n" + rows.substr(c1 + 1, c2 - c1 - 1) + "\n");
  }
  // config: two of the committed model configs.
  for (const char* name : {"model4.toml", "model8.toml"}) {
    write_file(out + "/config/" + name, read_file(std::string(FER_SOURCE_DIR) + "/configs/" + name));
  }
  // checkpoint: a small one through the real writer.
  {
    fer::training::Checkpoint c;
    c.model_name = "model4";
    c.class_names = {"angry", "fear", "happy"};
    c.config_text = read_file(std::string(FER_SOURCE_DIR) + "/configs/model4.toml");
    c.config_origin = "configs/model4.toml";
    c.tensors = {{"dense/kernel", true, {2, 3}, 0}, {"dense/bias", true, {3}, 6}};
    c.trainable_count = 9;
    c.params = std::vector<float>(9, 0.5f);
    c.optimizer_state = std::vector<float>(18, 0.1f);
    c.device = "cpu";
    c.created = "2026-11-30T00:00:00Z";
    write_file(out + "/checkpoint/small.ckpt", fer::training::serialize_checkpoint(c));
  }
  // cache: a 3-row 4x4 cache through the real writer.
  {
    fer::loaders::RawData raw;
    raw.height = raw.width = 4;
    raw.layout = "emotion,pixels,Usage";
    raw.pixels.resize(3 * 16);
    for (size_t i = 0; i < raw.pixels.size(); ++i) raw.pixels[i] = uint8_t(i);
    raw.fer_ids = {0, 3, 6};
    raw.usage = {fer::loaders::Usage::training, fer::loaders::Usage::public_test, fer::loaders::Usage::private_test};
    fer::loaders::CacheKey key;
    key.source_size = 4096;
    key.source_mtime_ns = 1700000000000000000LL;
    key.fingerprint = 0x1234;
    std::string why;
    fs::create_directories(out + "/cache");
    if (!fer::loaders::write_cache(out + "/cache/small.fercache", key, raw, &why)) {
      std::fprintf(stderr, "%s\n", why.c_str());
      return 1;
    }
  }
  std::printf("seeds written under %s\n", out.c_str());
  return 0;
}
