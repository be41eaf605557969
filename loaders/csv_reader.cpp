#include "loaders/csv_reader.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "loaders/mapped_file.h"
#include "loaders/text_util.h"

namespace fer::loaders {
namespace {

constexpr int kPixels = kImageSize * kImageSize;
// The shortest line that can hold 2304 one-digit pixels: anything shorter is an error, found in
// the counting pass (so the pixel array is never sized from a flood of short lines).
constexpr size_t kMinRowBytes = 2 * size_t(kPixels) - 1;

struct Columns {
  int count = 0;
  int emotion = -1, pixels = -1, usage = -1;
  std::string layout;  // the header's names, trimmed, joined by ','
};

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Trims spaces/tabs and one pair of surrounding double quotes (and spaces inside them).
inline void trim_field(const char*& b, const char*& e) {
  while (b < e && is_blank(*b)) ++b;
  while (e > b && is_blank(e[-1])) --e;
  if (e - b >= 2 && *b == '"' && e[-1] == '"') {
    ++b;
    --e;
    while (b < e && is_blank(*b)) ++b;
    while (e > b && is_blank(e[-1])) --e;
  }
}

std::string field_text(const char* b, const char* e) { return quoted_excerpt(b, size_t(e - b), 40); }

// One parsed line's outputs.
struct RowOut {
  uint8_t* pixels;
  uint8_t fer_id;
  Usage usage;
};

// Parses the pixel field. Returns true on success; otherwise sets *err.
bool parse_pixels(const char* b, const char* e, uint8_t* out, std::string* err) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(b);
  const unsigned char* const end = reinterpret_cast<const unsigned char*>(e);
  int count = 0;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    if (p == end) break;
    const unsigned char* tok = p;
    unsigned v = unsigned(*p) - '0';
    bool ok = v <= 9;
    bool range = false;
    if (ok) {
      ++p;
      unsigned d;
      while (p < end && (d = unsigned(*p) - '0') <= 9) {
        v = v * 10 + d;
        ++p;
        if (v > 255) {
          range = true;
          break;
        }
      }
      if (!range && p < end && *p != ' ' && *p != '\t') ok = false;
    } else if (*p == '-' && p + 1 < end && unsigned(p[1]) - '0' <= 9) {
      range = true;  // a negative integer
    }
    if (!ok || range) {
      const unsigned char* te = tok;
      while (te < end && *te != ' ' && *te != '\t') ++te;
      const char* tb = reinterpret_cast<const char*>(tok);
      const std::string tok_text = quoted_excerpt(tb, size_t(te - tok), 24);
      // "-3", "256", "1000": integers outside 0..255; anything else is not an integer.
      bool integer = true;
      for (const unsigned char* q = (*tok == '-' ? tok + 1 : tok); q < te; ++q) {
        if (unsigned(*q) - '0' > 9) integer = false;
      }
      if (te == tok + (*tok == '-' ? 1 : 0)) integer = false;
      *err = "pixel " + std::to_string(count + 1) + " is " + tok_text +
             (integer ? ", out of range 0..255" : ", not an integer in 0..255");
      return false;
    }
    if (count == kPixels) {
      // Too many: count the rest for the message.
      int more = 0;
      for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) ++p;
        if (p == end) break;
        ++more;
        while (p < end && *p != ' ' && *p != '\t') ++p;
      }
      *err = "expected " + std::to_string(kPixels) + " pixels (48x48), found " +
             std::to_string(kPixels + 1 + more);
      return false;
    }
    out[count++] = uint8_t(v);
  }
  if (count != kPixels) {
    *err = "expected " + std::to_string(kPixels) + " pixels (48x48), found " + std::to_string(count);
    return false;
  }
  return true;
}

bool parse_emotion(const char* b, const char* e, uint8_t* fer, std::string* err) {
  trim_field(b, e);
  if (b == e) {
    *err = "empty emotion field";
    return false;
  }
  const bool negative = *b == '-';
  bool integer = e - b > (negative ? 1 : 0);
  unsigned v = 0;
  for (const char* q = negative ? b + 1 : b; q < e; ++q) {
    const unsigned d = unsigned(static_cast<unsigned char>(*q)) - '0';
    if (d > 9) {
      integer = false;
      break;
    }
    v = v > 1000 ? v : v * 10 + d;  // saturate: only "in range or not" matters
  }
  if (!integer) {
    *err = "emotion " + field_text(b, e) + " is not an integer 0..6";
    return false;
  }
  if (negative || v >= unsigned(kNumFerClasses)) {
    *err = "emotion " + field_text(b, e) + " out of range 0..6";
    return false;
  }
  *fer = uint8_t(v);
  return true;
}

bool parse_usage(const char* b, const char* e, Usage* usage, std::string* err) {
  trim_field(b, e);
  const size_t n = size_t(e - b);
  auto is = [&](const char* name) {
    return n == std::strlen(name) && equals_ignore_case(std::string_view(b, n), name);
  };
  if (is("Training")) {
    *usage = Usage::training;
  } else if (is("PublicTest")) {
    *usage = Usage::public_test;
  } else if (is("PrivateTest")) {
    *usage = Usage::private_test;
  } else {
    *err = "unknown Usage " + field_text(b, e) + " (expected Training, PublicTest or PrivateTest)";
    return false;
  }
  return true;
}

// Parses one line (without its line terminator). Returns true on success.
bool parse_row(const char* b, const char* e, const Columns& cols, RowOut& out, std::string* err) {
  const char* p = b;
  for (int f = 0; f < cols.count; ++f) {
    const char* fe;
    if (f + 1 < cols.count) {
      fe = static_cast<const char*>(std::memchr(p, ',', size_t(e - p)));
      if (!fe) {
        *err = "expected " + std::to_string(cols.count) + " fields (" + cols.layout + "), found " +
               std::to_string(f + 1);
        return false;
      }
    } else {
      fe = e;
      if (std::memchr(p, ',', size_t(e - p))) {
        int found = cols.count;
        for (const char* q = p; q < e; ++q) found += (*q == ',');
        *err = "expected " + std::to_string(cols.count) + " fields (" + cols.layout + "), found " +
               std::to_string(found);
        return false;
      }
    }
    if (f == cols.pixels) {
      const char* pb = p;
      const char* pe = fe;
      trim_field(pb, pe);
      if (!parse_pixels(pb, pe, out.pixels, err)) return false;
    } else if (f == cols.emotion) {
      if (!parse_emotion(p, fe, &out.fer_id, err)) return false;
    } else if (f == cols.usage) {
      if (!parse_usage(p, fe, &out.usage, err)) return false;
    }
    p = fe + 1;
  }
  return true;
}

Columns parse_header(const char* b, const char* e, const std::string& name) {
  Columns cols;
  std::vector<std::string> names;
  const char* p = b;
  for (;;) {
    const char* fe = static_cast<const char*>(std::memchr(p, ',', size_t(e - p)));
    if (!fe) fe = e;
    const char* fb = p;
    const char* fend = fe;
    trim_field(fb, fend);
    names.emplace_back(fb, fend);
    if (fe == e) break;
    p = fe + 1;
  }
  const std::string found = quoted_excerpt(b, size_t(e - b), 60);
  if (names.size() == 1 && names[0].empty()) {
    throw UserError(name + ":1: empty header line; expected column names such as emotion,pixels,Usage");
  }
  cols.count = int(names.size());
  for (int i = 0; i < cols.count; ++i) {
    const std::string& n = names[size_t(i)];
    int* slot = nullptr;
    if (equals_ignore_case(n, "emotion")) {
      slot = &cols.emotion;
    } else if (equals_ignore_case(n, "pixels")) {
      slot = &cols.pixels;
    } else if (equals_ignore_case(n, "usage")) {
      slot = &cols.usage;
    } else {
      const bool numeric = !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == ' ';
      });
      if (numeric) {
        throw UserError(name + ":1: no header row: expected column names such as " +
                        "emotion,pixels,Usage, found data " + found);
      }
      throw UserError(name + ":1: unknown column " + quoted_excerpt(n.data(), n.size(), 40) +
                      " in header " + found + " (expected emotion, pixels and Usage)");
    }
    if (*slot >= 0) {
      throw UserError(name + ":1: column " + quoted_excerpt(n.data(), n.size(), 40) +
                      " appears twice in header " + found);
    }
    *slot = i;
    if (i) cols.layout += ',';
    cols.layout += n;
  }
  if (cols.pixels < 0) {
    throw UserError(name + ":1: no 'pixels' column in header " + found +
                    " (expected emotion,pixels,Usage)");
  }
  return cols;
}

struct Chunk {
  const char* begin = nullptr;
  const char* end = nullptr;
  // pass 1
  int64_t lines = 0;  // physical lines
  int64_t rows = 0;   // non-blank lines
  // errors (local physical line, 1-based within the chunk)
  int64_t error_line = -1;
  std::string error;
  // pass 2 placement
  int64_t first_line = 0;  // physical line number of the chunk's first line
  int64_t first_row = 0;
};

Chunk make_chunk(const char* b, const char* e) {
  Chunk c;
  c.begin = b;
  c.end = e;
  return c;
}

// Walks the lines of [b, e): calls fn(line_begin, line_end_without_cr, local_line, has_newline)
// for each line; fn returns false to stop. Lines longer than kMaxCsvLineBytes set *too_long.
template <typename Fn>
void for_each_line(const char* b, const char* e, bool* too_long, int64_t* lines, Fn&& fn) {
  const char* p = b;
  int64_t local = 0;
  while (p < e) {
    const size_t window = std::min(size_t(e - p), kMaxCsvLineBytes + 1);
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', window));
    const char* line_end;
    if (nl) {
      line_end = nl;
    } else if (size_t(e - p) > kMaxCsvLineBytes) {
      ++local;
      *too_long = true;
      *lines = local;
      return;
    } else {
      line_end = e;
    }
    ++local;
    const char* content_end = line_end;
    if (content_end > p && content_end[-1] == '\r') --content_end;
    if (size_t(content_end - p) > kMaxCsvLineBytes) {
      *too_long = true;
      *lines = local;
      return;
    }
    if (!fn(p, content_end, local, nl != nullptr)) {
      *lines = local;
      return;
    }
    p = nl ? nl + 1 : e;
  }
  *lines = local;
}

// Only the file's last line can end without a newline (chunks end just after one).
const char* truncated_hint(bool has_newline) {
  return has_newline ? "" : " (the last line has no newline: is the file truncated?)";
}

int pick_threads(int threads, size_t bytes) {
  int t = threads > 0 ? threads : int(std::thread::hardware_concurrency());
  if (t < 1) t = 1;
  const size_t per_thread = 4u << 20;  // below ~4 MB a thread is not worth starting
  const size_t useful = std::max<size_t>(1, bytes / per_thread);
  return int(std::min<size_t>(size_t(t), std::min<size_t>(useful, 64)));
}

template <typename Fn>
void run_parallel(int threads, int tasks, Fn&& fn) {
  std::atomic<int> next{0};
  auto worker = [&] {
    for (int i = next.fetch_add(1); i < tasks; i = next.fetch_add(1)) fn(i);
  };
  if (threads <= 1 || tasks <= 1) {
    worker();
    return;
  }
  std::vector<std::thread> pool;
  const int n = std::min(threads, tasks) - 1;
  pool.reserve(size_t(n));
  // fn never throws (errors are recorded per chunk), so the joins below always run.
  for (int i = 0; i < n; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

}  // namespace

RawData parse_kaggle_csv(const char* data, size_t size, const std::string& name, int threads) {
  const char* const file_end = data + size;
  const char* p = data;
  if (size >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;  // UTF-8 BOM
  if (p == file_end) throw UserError(name + ": empty file");
  {
    const size_t probe = std::min<size_t>(size, 4096);
    if (std::memchr(data, '\0', probe)) {
      throw UserError(name + ": binary data (NUL bytes), not a CSV file");
    }
  }

  // ---- header (line 1) ----
  const size_t window = std::min(size_t(file_end - p), kMaxCsvLineBytes + 1);
  const char* nl = static_cast<const char*>(std::memchr(p, '\n', window));
  if (!nl && size_t(file_end - p) > kMaxCsvLineBytes) {
    throw UserError(name + ":1: line is longer than " + std::to_string(kMaxCsvLineBytes) +
                    " bytes; not a FER2013 CSV header");
  }
  const char* header_end = nl ? nl : file_end;
  const char* header_content_end = header_end;
  if (header_content_end > p && header_content_end[-1] == '\r') --header_content_end;
  const Columns cols = parse_header(p, header_content_end, name);
  const char* body = nl ? nl + 1 : file_end;

  // ---- chunking at line boundaries ----
  const size_t body_bytes = size_t(file_end - body);
  const int nthreads = pick_threads(threads, body_bytes);
  const int nchunks = nthreads > 1 ? nthreads * 4 : 1;
  std::vector<Chunk> chunks;
  {
    const char* start = body;
    bool sequential = false;
    for (int c = 1; c < nchunks && !sequential; ++c) {
      const char* q = body + body_bytes / size_t(nchunks) * size_t(c);
      if (q <= start) continue;
      const size_t w = std::min(size_t(file_end - q), kMaxCsvLineBytes + 2);
      const char* cut = static_cast<const char*>(std::memchr(q, '\n', w));
      if (!cut) {
        // A very long line (or the end): let one sequential pass find and report it in order.
        if (size_t(file_end - q) > w) sequential = true;
        break;
      }
      chunks.push_back(make_chunk(start, cut + 1));
      start = cut + 1;
    }
    if (sequential) chunks.clear(), start = body;
    if (start < file_end || chunks.empty()) chunks.push_back(make_chunk(start, file_end));
  }
  const int n = int(chunks.size());

  // ---- pass 1: count lines and rows; reject over-long and too-short lines ----
  std::atomic<int> first_error_chunk{INT_MAX};
  auto note_error = [&](int c) {
    int cur = first_error_chunk.load();
    while (c < cur && !first_error_chunk.compare_exchange_weak(cur, c)) {
    }
  };
  run_parallel(nthreads, n, [&](int c) {
    Chunk& ch = chunks[size_t(c)];
    std::vector<uint8_t> scratch(kPixels);
    bool too_long = false;
    for_each_line(ch.begin, ch.end, &too_long, &ch.lines,
                  [&](const char* lb, const char* le, int64_t local, bool has_nl) {
                    if (lb == le) return true;  // empty line
                    if (size_t(le - lb) < kMinRowBytes) {
                      RowOut out{scratch.data(), 0, Usage::training};
                      std::string err;
                      if (!parse_row(lb, le, cols, out, &err)) {
                        ch.error_line = local;
                        ch.error = err + truncated_hint(has_nl);
                        note_error(c);
                        return false;
                      }
                    }
                    ++ch.rows;
                    if ((local & 1023) == 0 && first_error_chunk.load(std::memory_order_relaxed) < c) {
                      return false;  // an earlier chunk already failed
                    }
                    return true;
                  });
    if (too_long) {
      ch.error_line = ch.lines;
      ch.error = "line is longer than " + std::to_string(kMaxCsvLineBytes) +
                 " bytes; not a FER2013 CSV row";
      note_error(c);
    }
  });
  auto throw_first_error = [&] {
    int64_t line = 2;  // the body starts on line 2
    for (const Chunk& ch : chunks) {
      if (ch.error_line >= 0) {
        throw UserError(name + ":" + std::to_string(line + ch.error_line - 1) + ": " + ch.error);
      }
      line += ch.lines;
    }
  };
  if (first_error_chunk.load() != INT_MAX) throw_first_error();

  int64_t rows = 0, line = 2;
  for (Chunk& ch : chunks) {
    ch.first_row = rows;
    ch.first_line = line;
    rows += ch.rows;
    line += ch.lines;
  }
  if (rows == 0) throw UserError(name + ": header only, no data rows");

  // ---- pass 2: parse into place ----
  RawData raw;
  raw.format = SourceFormat::csv;
  raw.layout = cols.layout;
  raw.labeled = cols.emotion >= 0;
  raw.pixels.resize(size_t(rows) * size_t(kPixels));
  raw.fer_ids.assign(size_t(rows), kNoLabel);
  raw.usage.assign(size_t(rows), Usage::training);
  run_parallel(nthreads, n, [&](int c) {
    Chunk& ch = chunks[size_t(c)];
    int64_t row = ch.first_row;
    bool too_long = false;
    int64_t lines = 0;
    for_each_line(ch.begin, ch.end, &too_long, &lines,
                  [&](const char* lb, const char* le, int64_t local, bool has_nl) {
                    if (lb == le) return true;
                    RowOut out{raw.pixels.data() + size_t(row) * kPixels, kNoLabel,
                               Usage::training};
                    std::string err;
                    if (!parse_row(lb, le, cols, out, &err)) {
                      ch.error_line = local;
                      ch.error = err + truncated_hint(has_nl);
                      note_error(c);
                      return false;
                    }
                    raw.fer_ids[size_t(row)] = out.fer_id;
                    raw.usage[size_t(row)] = out.usage;
                    ++row;
                    if ((row & 255) == 0 && first_error_chunk.load(std::memory_order_relaxed) < c) {
                      return false;
                    }
                    return true;
                  });
  });
  if (first_error_chunk.load() != INT_MAX) throw_first_error();
  return raw;
}

RawData read_kaggle_csv(const std::string& path, int threads) {
  MappedFile file(path, kMaxCsvFileBytes);
  return parse_kaggle_csv(file.data(), file.size(), path, threads);
}

}  // namespace fer::loaders
