#include "engine/training/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "engine/error.h"
#include "engine/training/fileio.h"

namespace fer::training {

static_assert(std::endian::native == std::endian::little, "checkpoints are written little-endian");

// The checkpoint's own checksum (its own, not a shared hash, so the file format never changes
// because another module changed its hash): four multiply-rotate lanes over 32-byte blocks, then a tail
// and a final avalanche. Detects truncation, bit rot and edits; not a cryptographic signature.
namespace {
uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
}  // namespace

uint64_t checkpoint_checksum(const void* data, size_t n) {
  constexpr uint64_t k1 = 0x9E3779B185EBCA87ULL, k2 = 0xC2B2AE3D27D4EB4FULL, k3 = 0x165667B19E3779F9ULL;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t lane[4] = {k1 + k2, k2, 0, 0 - k1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      lane[l] = rotl(lane[l] + w * k2, 31) * k1;
    }
  }
  uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18) + k3 + uint64_t(n);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = rotl(h ^ (rotl(w * k2, 31) * k1), 27) * k1 + 0x85EBCA77C2B2AE63ULL;
  }
  for (; i < n; ++i) h = rotl(h ^ (uint64_t(p[i]) * k3), 11) * k1;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

namespace {

constexpr char kMagic[8] = {'F', 'E', 'R', 'G', 'P', 'U', 'C', 'K'};


uint32_t tag_of(const char (&s)[5]) {
  uint32_t t;
  std::memcpy(&t, s, 4);
  return t;
}
std::string tag_name(uint32_t t) {
  char s[5] = {0};
  std::memcpy(s, &t, 4);
  for (int i = 0; i < 4; ++i)
    if (s[i] < 32 || s[i] > 126) s[i] = '?';
  return s;
}

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const char* p = reinterpret_cast<const char*>(&v);
    out_.append(p, sizeof v);
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    out_.append(s);
  }
  template <typename T>
  void vec(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(v.size());
    if (!v.empty()) out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void begin(const char (&tag)[5]) {
    put<uint32_t>(tag_of(tag));
    put<uint32_t>(0);
    length_at_ = out_.size();
    put<uint64_t>(0);
  }
  void end() {
    const uint64_t len = out_.size() - length_at_ - 8;
    std::memcpy(out_.data() + length_at_, &len, 8);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
  size_t length_at_ = 0;
};

class Reader {
 public:
  Reader(const char* p, size_t n, std::string what) : p_(p), n_(n), what_(std::move(what)) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string str() {
    const uint64_t len = get<uint64_t>();
    need(len);
    std::string s(p_ + at_, size_t(len));
    at_ += size_t(len);
    return s;
  }
  template <typename T>
  std::vector<T> vec() {
    const uint64_t count = get<uint64_t>();
    if (count > (n_ - at_) / sizeof(T)) fail("an array of " + std::to_string(count) + " elements runs past the end");
    std::vector<T> v(static_cast<size_t>(count));
    if (count) std::memcpy(v.data(), p_ + at_, size_t(count) * sizeof(T));
    at_ += size_t(count) * sizeof(T);
    return v;
  }
  void skip_vec(size_t elem) {
    const uint64_t count = get<uint64_t>();
    if (count > (n_ - at_) / elem) fail("an array runs past the end");
    at_ += size_t(count) * elem;
  }
  bool done() const { return at_ == n_; }
  [[noreturn]] void fail(const std::string& why) const { throw UserError(what_ + ": " + why); }

 private:
  void need(uint64_t k) const {
    if (k > n_ - at_) fail("ends early (needs " + std::to_string(k) + " more bytes at offset " + std::to_string(at_) + ")");
  }
  const char* p_;
  size_t n_;
  size_t at_ = 0;
  std::string what_;
};

void write_history(Writer& w, const History& h) {
  w.put<uint64_t>(h.epochs.size());
  for (const EpochRecord& e : h.epochs) {
    w.put<int32_t>(e.epoch);
    w.put(e.loss);
    w.put(e.accuracy);
    w.put(e.val_loss);
    w.put(e.val_accuracy);
    w.put(e.lr);
    w.put(e.steps);
    w.put(e.train_images);
    w.put(e.seconds);
    w.put(e.train_seconds);
    w.put(e.val_seconds);
  }
}

History read_history(Reader& r) {
  History h;
  const uint64_t n = r.get<uint64_t>();
  if (n > 1000000) r.fail("implausible epoch count " + std::to_string(n));
  for (uint64_t i = 0; i < n; ++i) {
    EpochRecord e;
    e.epoch = r.get<int32_t>();
    e.loss = r.get<double>();
    e.accuracy = r.get<double>();
    e.val_loss = r.get<double>();
    e.val_accuracy = r.get<double>();
    e.lr = r.get<double>();
    e.steps = r.get<int64_t>();
    e.train_images = r.get<int64_t>();
    e.seconds = r.get<double>();
    e.train_seconds = r.get<double>();
    e.val_seconds = r.get<double>();
    h.epochs.push_back(e);
  }
  return h;
}

}  // namespace

std::vector<TensorInfo> tensor_table(const Graph& graph) {
  std::vector<TensorInfo> out;
  for (const ParamEntry& p : graph.all_params()) {
    TensorInfo t;
    t.name = graph.layer(p.layer).name() + "/" + p.spec.name;
    t.trainable = p.spec.trainable;
    t.shape = p.spec.shape;
    t.offset = p.offset;
    out.push_back(std::move(t));
  }
  return out;
}

std::string serialize_checkpoint(const Checkpoint& c) {
  Writer w;
  w.bytes().assign(kCheckpointHeaderBytes, '\0');

  w.begin("MODL");
  w.str(c.model_name);
  w.put<uint64_t>(c.class_names.size());
  for (const auto& n : c.class_names) w.str(n);
  w.str(c.config_text);
  w.str(c.config_origin);
  w.end();

  w.begin("TENS");
  w.put(c.trainable_count);
  w.put(c.state_count);
  w.put<uint64_t>(c.tensors.size());
  for (const TensorInfo& t : c.tensors) {
    w.str(t.name);
    w.put<uint8_t>(t.trainable ? 1 : 0);
    w.vec(t.shape);
    w.put(t.offset);
  }
  w.end();

  w.begin("PARM");
  w.vec(c.params);
  w.end();
  w.begin("STAT");
  w.vec(c.state);
  w.end();

  w.begin("OPTM");
  w.put(c.optimizer_kind);
  w.put(c.learning_rate);
  w.put(c.beta1);
  w.put(c.beta2);
  w.put(c.epsilon);
  w.put(c.momentum);
  w.put(c.nesterov);
  w.put(c.optimizer_steps);
  w.vec(c.optimizer_state);
  w.end();

  const TrainPosition& p = c.position;
  w.begin("POSN");
  w.put(p.seed);
  w.put(p.epoch);
  w.put(p.batch_in_epoch);
  w.put(p.global_step);
  w.put(p.target_epochs);
  w.put(p.batch_size);
  w.put(p.partial_loss_sum);
  w.put(p.partial_correct);
  w.put(p.partial_samples);
  w.put(p.partial_train_seconds);
  w.put(p.train_rows);
  w.put(p.val_rows);
  w.put<uint8_t>(p.finished ? 1 : 0);
  w.end();

  const CallbackStates& cb = c.callbacks;
  w.begin("CALL");
  w.put(cb.best.best);
  w.put<int32_t>(cb.best.best_epoch);
  w.put(cb.reduce_lr.best);
  w.put<int32_t>(cb.reduce_lr.wait);
  w.put<int32_t>(cb.reduce_lr.cooldown_counter);
  const EarlyStoppingState& es = cb.early_stopping;
  w.put(es.best);
  w.put<int32_t>(es.wait);
  w.put<int32_t>(es.best_epoch);
  w.put<int32_t>(es.stopped_epoch);
  w.put<uint8_t>(es.has_best_weights ? 1 : 0);
  w.vec(es.best_params);
  w.vec(es.best_state);
  w.end();

  w.begin("HIST");
  write_history(w, c.history);
  w.end();

  // Per-epoch loader stall, added after format version 1 shipped: its own optional section, so
  // older readers skip it and older checkpoints (without it) read as stall 0.
  w.begin("LDST");
  w.put<uint64_t>(c.history.epochs.size());
  for (const EpochRecord& e : c.history.epochs) w.put(e.loader_stall_seconds);
  w.end();

  // Per-epoch collapse signs (engine/training/collapse.h), added later like LDST: optional, so
  // older checkpoints read as "not recorded" and older readers skip it.
  w.begin("CLPS");
  w.put<uint64_t>(c.history.epochs.size());
  for (const EpochRecord& e : c.history.epochs) {
    w.put<int32_t>(e.val_predicted_classes);
    w.str(e.val_only_class);
    w.put<uint8_t>(e.loss_exploded ? 1 : 0);
  }
  w.end();

  w.begin("PRED");
  w.put<int32_t>(c.predictions.epoch);
  w.vec(c.predictions.rows);
  w.vec(c.predictions.truth);
  w.vec(c.predictions.predicted);
  w.vec(c.predictions.confidence);
  w.end();

  w.begin("INFO");
  w.str(c.device);
  w.str(c.created);
  w.end();

  std::string& out = w.bytes();
  const uint64_t payload_size = out.size() - kCheckpointHeaderBytes;
  const uint64_t payload_sum = checkpoint_checksum(out.data() + kCheckpointHeaderBytes, payload_size);
  char* h = out.data();
  std::memcpy(h, kMagic, 8);
  const uint32_t version = kCheckpointVersion, header = uint32_t(kCheckpointHeaderBytes);
  std::memcpy(h + 8, &version, 4);
  std::memcpy(h + 12, &header, 4);
  std::memcpy(h + 16, &payload_size, 8);
  std::memcpy(h + 24, &payload_sum, 8);
  std::memcpy(h + 32, &c.arch_hash, 8);
  const uint64_t header_sum = checkpoint_checksum(h, 40);
  std::memcpy(h + 40, &header_sum, 8);
  return std::move(out);
}

void write_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  write_file_atomic(path, serialize_checkpoint(ckpt));
}

namespace {

// The fixed 48-byte header: signature, version, header size, payload size and checksum,
// architecture hash, header checksum.
struct CheckpointHeader {
  uint32_t version = 0, header = 0;
  uint64_t payload_size = 0, payload_sum = 0, arch = 0, header_sum = 0;
};

// Reads the header and checks, in this order, the signature, the version (a later format may lay
// out its header differently), both checksums and the file's length. Throws UserError naming `path`.
CheckpointHeader check_header(const std::string& bytes, const std::string& path) {
  const std::string not_ckpt = path + ": not a fer_gpu checkpoint";
  const size_t head = std::min<size_t>(bytes.size(), 8);
  if (bytes.empty() || std::memcmp(bytes.data(), kMagic, head) != 0) {
    throw UserError(not_ckpt + " (it does not start with the checkpoint signature)");
  }
  if (bytes.size() < kCheckpointHeaderBytes) {
    throw UserError(path + ": truncated checkpoint: " + std::to_string(bytes.size()) +
                    " bytes, shorter than its 48-byte header");
  }
  const char* h = bytes.data();
  CheckpointHeader hd;
  std::memcpy(&hd.version, h + 8, 4);
  std::memcpy(&hd.header, h + 12, 4);
  std::memcpy(&hd.payload_size, h + 16, 8);
  std::memcpy(&hd.payload_sum, h + 24, 8);
  std::memcpy(&hd.arch, h + 32, 8);
  std::memcpy(&hd.header_sum, h + 40, 8);
  // The version first: a later format may lay out (and checksum) its header differently.
  if (hd.version > kCheckpointVersion) {
    throw UserError(path + ": checkpoint format version " + std::to_string(hd.version) +
                    " is newer than this fer_gpu reads (version " + std::to_string(kCheckpointVersion) +
                    "); update fer_gpu");
  }
  if (checkpoint_checksum(h, 40) != hd.header_sum) throw UserError(path + ": corrupt checkpoint: its header checksum does not match");
  if (hd.version < 1) throw UserError(path + ": unsupported checkpoint format version " + std::to_string(hd.version));
  if (hd.header != kCheckpointHeaderBytes) throw UserError(path + ": corrupt checkpoint: unexpected header size " + std::to_string(hd.header));
  const uint64_t expected = kCheckpointHeaderBytes + hd.payload_size;
  if (bytes.size() < expected) {
    throw UserError(path + ": truncated checkpoint: " + std::to_string(bytes.size()) + " bytes of " +
                    std::to_string(expected) + " (the file was cut short or copied incompletely)");
  }
  if (bytes.size() > expected) {
    throw UserError(path + ": corrupt checkpoint: " + std::to_string(bytes.size() - expected) +
                    " unexpected bytes after its end");
  }
  if (checkpoint_checksum(h + kCheckpointHeaderBytes, size_t(hd.payload_size)) != hd.payload_sum) {
    throw UserError(path + ": corrupt checkpoint: the payload checksum does not match (the file was modified or damaged)");
  }
  return hd;
}

// The payload split into its tagged sections (tag, 8-byte length, bytes); each tag at most once.
class Sections {
 public:
  Sections(const char* payload, size_t payload_size, const std::string& path) : path_(path) {
    Reader r(payload, payload_size, path + ": corrupt checkpoint");
    size_t at = 0;
    while (at < payload_size) {
      if (payload_size - at < 16) r.fail("a section header runs past the end");
      uint32_t tag;
      uint64_t len;
      std::memcpy(&tag, payload + at, 4);
      std::memcpy(&len, payload + at + 8, 8);
      at += 16;
      if (len > payload_size - at) r.fail("section " + tag_name(tag) + " runs past the end");
      if (!sections_.emplace(tag, std::make_pair(payload + at, size_t(len))).second) {
        r.fail("section " + tag_name(tag) + " appears twice");
      }
      at += size_t(len);
    }
  }

  // A reader over section `tag`; a missing required section throws, an optional one gives null.
  std::unique_ptr<Reader> get(const char (&tag)[5], bool required = true) const {
    auto it = sections_.find(tag_of(tag));
    if (it == sections_.end()) {
      if (required) throw UserError(path_ + ": corrupt checkpoint: the " + std::string(tag) + " section is missing");
      return nullptr;
    }
    return std::make_unique<Reader>(it->second.first, it->second.second,
                                    path_ + ": corrupt checkpoint: section " + std::string(tag));
  }

 private:
  std::string path_;
  std::map<uint32_t, std::pair<const char*, size_t>> sections_;
};

// MODL: model name, class names, the config text and where it came from.
void read_model(Reader& r, Checkpoint& c) {
  c.model_name = r.str();
  const uint64_t n = r.get<uint64_t>();
  if (n > 64) r.fail("implausible class count " + std::to_string(n));
  for (uint64_t i = 0; i < n; ++i) c.class_names.push_back(r.str());
  c.config_text = r.str();
  c.config_origin = r.str();
}

// TENS: the tensor table; each tensor must sit where the running dense offset says.
void read_tensors(Reader& r, Checkpoint& c) {
  c.trainable_count = r.get<int64_t>();
  c.state_count = r.get<int64_t>();
  const uint64_t n = r.get<uint64_t>();
  if (n > 100000) r.fail("implausible tensor count " + std::to_string(n));
  int64_t trainable = 0, state = 0;
  for (uint64_t i = 0; i < n; ++i) {
    TensorInfo t;
    t.name = r.str();
    t.trainable = r.get<uint8_t>() != 0;
    t.shape = r.vec<int>();
    t.offset = r.get<int64_t>();
    for (int d : t.shape)
      if (d < 1) r.fail("tensor " + t.name + " has a non-positive dimension");
    int64_t& running = t.trainable ? trainable : state;
    if (t.offset != running) r.fail("tensor " + t.name + " is not where the table says");
    running += t.size();
    c.tensors.push_back(std::move(t));
  }
  if (trainable != c.trainable_count || state != c.state_count) r.fail("tensor sizes do not add up to the totals");
}

// PARM: the trainable parameters, as many as the table says.
void read_params(Reader& r, Checkpoint& c) {
  c.params = r.vec<float>();
  if (int64_t(c.params.size()) != c.trainable_count) {
    r.fail("holds " + std::to_string(c.params.size()) + " parameters, the table says " + std::to_string(c.trainable_count));
  }
}

// STAT: the non-trainable state (BN moving statistics), as many values as the table says.
void read_state(Reader& r, Checkpoint& c) {
  c.state = r.vec<float>();
  if (int64_t(c.state.size()) != c.state_count) {
    r.fail("holds " + std::to_string(c.state.size()) + " state values, the table says " + std::to_string(c.state_count));
  }
}

// OPTM: optimizer settings and (unless weights_only) its state: Adam 2, SGD 1 slot per parameter.
void read_optimizer(Reader& r, Checkpoint& c, bool weights_only) {
  c.optimizer_kind = r.get<int32_t>();
  c.learning_rate = r.get<float>();
  c.beta1 = r.get<float>();
  c.beta2 = r.get<float>();
  c.epsilon = r.get<float>();
  c.momentum = r.get<float>();
  c.nesterov = r.get<int32_t>();
  c.optimizer_steps = r.get<int64_t>();
  if (c.optimizer_kind < 0 || c.optimizer_kind > 1) r.fail("unknown optimizer kind " + std::to_string(c.optimizer_kind));
  if (weights_only) {
    r.skip_vec(sizeof(float));
  } else {
    c.optimizer_state = r.vec<float>();
    const int64_t slots = c.optimizer_kind == 0 ? 2 : 1;
    if (int64_t(c.optimizer_state.size()) != slots * c.trainable_count) r.fail("optimizer state has the wrong size");
  }
}

// POSN: where the run stands (epoch, step in it, the epoch's partial sums).
void read_position(Reader& r, TrainPosition& p) {
  p.seed = r.get<uint64_t>();
  p.epoch = r.get<int64_t>();
  p.batch_in_epoch = r.get<int64_t>();
  p.global_step = r.get<uint64_t>();
  p.target_epochs = r.get<int32_t>();
  p.batch_size = r.get<int32_t>();
  p.partial_loss_sum = r.get<double>();
  p.partial_correct = r.get<double>();
  p.partial_samples = r.get<int64_t>();
  p.partial_train_seconds = r.get<double>();
  p.train_rows = r.get<int64_t>();
  p.val_rows = r.get<int64_t>();
  p.finished = r.get<uint8_t>() != 0;
  if (p.epoch < 0 || p.batch_in_epoch < 0 || p.batch_size < 1) r.fail("impossible training position");
}

// CALL: the callbacks' states; EarlyStopping's best weights unless weights_only.
void read_callbacks(Reader& r, Checkpoint& c, bool weights_only) {
  CallbackStates& cb = c.callbacks;
  cb.best.best = r.get<double>();
  cb.best.best_epoch = r.get<int32_t>();
  cb.reduce_lr.best = r.get<double>();
  cb.reduce_lr.wait = r.get<int32_t>();
  cb.reduce_lr.cooldown_counter = r.get<int32_t>();
  EarlyStoppingState& es = cb.early_stopping;
  es.best = r.get<double>();
  es.wait = r.get<int32_t>();
  es.best_epoch = r.get<int32_t>();
  es.stopped_epoch = r.get<int32_t>();
  es.has_best_weights = r.get<uint8_t>() != 0;
  if (weights_only) {
    r.skip_vec(sizeof(float));
    r.skip_vec(sizeof(float));
  } else {
    es.best_params = r.vec<float>();
    es.best_state = r.vec<float>();
    if (es.has_best_weights && (int64_t(es.best_params.size()) != c.trainable_count ||
                                int64_t(es.best_state.size()) != c.state_count)) {
      r.fail("early-stopping best weights have the wrong size");
    }
  }
}

// LDST (optional, later than HIST): each epoch's loader stall.
void read_loader_stalls(Reader& r, History& h) {
  const uint64_t n = r.get<uint64_t>();
  if (n != h.epochs.size()) r.fail("loader stall count differs from the history's epochs");
  for (EpochRecord& e : h.epochs) e.loader_stall_seconds = r.get<double>();
}

// CLPS (optional, later than HIST): each epoch's collapse signs.
void read_collapse_signs(Reader& r, History& h) {
  const uint64_t n = r.get<uint64_t>();
  if (n != h.epochs.size()) r.fail("collapse sign count differs from the history's epochs");
  for (EpochRecord& e : h.epochs) {
    e.val_predicted_classes = r.get<int32_t>();
    e.val_only_class = r.str();
    e.loss_exploded = r.get<uint8_t>() != 0;
    if (e.val_predicted_classes < 0 || e.val_predicted_classes > 7) r.fail("implausible predicted class count");
  }
}

// PRED (optional): the validation predictions the report draws.
void read_predictions(Reader& r, Predictions& p) {
  p.epoch = r.get<int32_t>();
  p.rows = r.vec<int64_t>();
  p.truth = r.vec<int32_t>();
  p.predicted = r.vec<int32_t>();
  p.confidence = r.vec<float>();
  if (p.truth.size() != p.rows.size() || p.predicted.size() != p.rows.size() || p.confidence.size() != p.rows.size()) {
    r.fail("prediction arrays differ in length");
  }
}

}  // namespace

// The header, then each section in the order the writer puts them; a missing required section
// or a section that disagrees with the tensor table is a UserError naming the file and section.
Checkpoint parse_checkpoint(const std::string& bytes, const std::string& path, bool weights_only) {
  const CheckpointHeader hd = check_header(bytes, path);
  const Sections sections(bytes.data() + kCheckpointHeaderBytes, size_t(hd.payload_size), path);
  Checkpoint c;
  c.arch_hash = hd.arch;
  read_model(*sections.get("MODL"), c);
  read_tensors(*sections.get("TENS"), c);
  read_params(*sections.get("PARM"), c);
  read_state(*sections.get("STAT"), c);
  read_optimizer(*sections.get("OPTM"), c, weights_only);
  read_position(*sections.get("POSN"), c.position);
  read_callbacks(*sections.get("CALL"), c, weights_only);
  c.history = read_history(*sections.get("HIST"));
  if (auto r = sections.get("LDST", false)) read_loader_stalls(*r, c.history);
  if (auto r = sections.get("CLPS", false)) read_collapse_signs(*r, c.history);
  if (auto r = sections.get("PRED", false)) read_predictions(*r, c.predictions);
  if (auto r = sections.get("INFO", false)) {
    c.device = r->str();
    c.created = r->str();
  }
  return c;
}

Checkpoint read_checkpoint(const std::string& path, bool weights_only) {
  if (!path_exists(path)) throw UserError(path + ": no such checkpoint file");
  return parse_checkpoint(read_file(path), path, weights_only);
}

void check_checkpoint_matches(const Checkpoint& ckpt, const std::string& ckpt_path, const Graph& graph,
                              uint64_t graph_hash, const std::string& model_name,
                              const std::string& config_path) {
  if (ckpt.arch_hash != graph_hash) {
    if (ckpt.model_name != model_name) {
      throw UserError(ckpt_path + " is a checkpoint of " + ckpt.model_name + ", but " + config_path +
                      " describes " + model_name + ": pass the config the checkpoint was trained with");
    }
    throw UserError(ckpt_path + " is a checkpoint of a different " + model_name + " architecture than " +
                    config_path + " (layers or shapes changed since it was written)");
  }
  const std::vector<TensorInfo> want = tensor_table(graph);
  bool same = want.size() == ckpt.tensors.size() && ckpt.trainable_count == graph.trainable_count() &&
              ckpt.state_count == graph.non_trainable_count();
  for (size_t i = 0; same && i < want.size(); ++i) {
    same = want[i].name == ckpt.tensors[i].name && want[i].shape == ckpt.tensors[i].shape &&
           want[i].trainable == ckpt.tensors[i].trainable && want[i].offset == ckpt.tensors[i].offset;
  }
  if (!same) {
    throw UserError(ckpt_path + ": its tensor table (names and shapes) does not match the model of " + config_path);
  }
  if (!ckpt.class_names.empty() && int(ckpt.class_names.size()) != graph.classes()) {
    throw UserError(ckpt_path + ": it names " + std::to_string(ckpt.class_names.size()) +
                    " classes but the model has " + std::to_string(graph.classes()));
  }
}

}  // namespace fer::training
