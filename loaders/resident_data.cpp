#include "loaders/resident_data.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/nvtx.h"

namespace fer::loaders {
namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

std::string human_bytes(size_t bytes) {
  const double mib = double(bytes) / double(1 << 20);
  char buf[32];
  if (mib >= 1024) std::snprintf(buf, sizeof buf, "%.1f GiB", mib / 1024);
  else std::snprintf(buf, sizeof buf, mib < 10 ? "%.1f MiB" : "%.0f MiB", mib);
  return buf;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Layout {
  size_t images = 0, labels = 0, keys = 0, total = 0;  // offsets, total bytes
};

Layout layout_for(int64_t row_bytes, int64_t rows) {
  Layout l;
  l.images = 0;
  l.labels = align_up(size_t(rows) * size_t(row_bytes));
  l.keys = l.labels + align_up(size_t(rows) * sizeof(int32_t));
  l.total = l.keys + align_up(size_t(rows) * sizeof(int64_t));
  return l;
}

}  // namespace

bool parse_resident_mode(const std::string& text, ResidentMode* out) {
  if (text == "auto") *out = ResidentMode::automatic;
  else if (text == "on") *out = ResidentMode::on;
  else if (text == "off") *out = ResidentMode::off;
  else return false;
  return true;
}

const char* resident_mode_name(ResidentMode mode) {
  switch (mode) {
    case ResidentMode::automatic: return "auto";
    case ResidentMode::on: return "on";
    case ResidentMode::off: return "off";
  }
  return "?";
}

ResidentChoice choose_resident(ResidentMode mode, DeviceKind kind, size_t bytes, bool memory_known,
                               size_t free_bytes) {
  ResidentChoice c;
  const std::string size = human_bytes(bytes);
  switch (mode) {
    case ResidentMode::off:
      c.reason = "streamed by the loader thread (resident = \"off\")";
      return c;
    case ResidentMode::on:
      c.resident = true;
      c.reason = "resident in " + std::string(kind == DeviceKind::cuda ? "device" : "host") + " memory (" +
                 size + "; resident = \"on\")";
      return c;
    case ResidentMode::automatic:
      break;
  }
  if (kind != DeviceKind::cuda) {
    c.reason = "streamed by the loader thread (resident = \"auto\" on the CPU)";
  } else if (!memory_known) {
    c.reason = "streamed by the loader thread (resident = \"auto\": the device did not report its free memory)";
  } else if (bytes <= free_bytes / kResidentFreeMemoryFactor) {  // bytes * factor <= free, no overflow
    c.resident = true;
    c.reason = "resident in device memory (" + size + " of " + human_bytes(free_bytes) +
               " free; resident = \"auto\")";
  } else {
    c.reason = "streamed by the loader thread (" + size + " would take more than 1/" +
               std::to_string(kResidentFreeMemoryFactor) + " of the " + human_bytes(free_bytes) +
               " free; resident = \"on\" forces it)";
  }
  return c;
}

ResidentChoice choose_resident(ResidentMode mode, Backend& backend, size_t bytes) {
  size_t free_bytes = 0, total_bytes = 0;
  const bool known = mode == ResidentMode::automatic && backend.memory_info(&free_bytes, &total_bytes);
  return choose_resident(mode, backend.kind(), bytes, known, free_bytes);
}

size_t resident_bytes(const Dataset& data, int64_t rows) {
  return layout_for(data.image_bytes(), rows).total;
}

// ------------------------------------------------------------------------------------------------

ResidentData::ResidentData(const Dataset& data, std::vector<int64_t> rows,
                           std::shared_ptr<Backend> backend)
    : backend_(std::move(backend)), rows_(std::move(rows)) {
  if (!backend_) throw std::invalid_argument("ResidentData: no backend");
  if (rows_.empty()) throw UserError(data.source + ": no images to hold (empty split)");
  if (data.size() > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("ResidentData: " + std::to_string(data.size()) +
                                " rows exceed the int32 batch indices");
  }
  row_bytes_ = data.image_bytes();
  height_ = data.height;
  width_ = data.width;
  position_.assign(size_t(data.size()), -1);
  for (size_t i = 0; i < rows_.size(); ++i) {
    const int64_t r = rows_[i];
    if (r < 0 || r >= data.size()) {
      throw std::out_of_range("ResidentData: row " + std::to_string(r) + " outside the dataset");
    }
    if (position_[size_t(r)] >= 0) {
      throw std::invalid_argument("ResidentData: row " + std::to_string(r) + " listed twice");
    }
    position_[size_t(r)] = int32_t(i);
  }

  const int64_t n = size();
  const Layout l = layout_for(row_bytes_, n);
  // Host staging in the device layout, then one copy (the CPU backend's copy is a memcpy).
  std::vector<uint8_t> host(l.total, 0);
  uint8_t* images = host.data() + l.images;
  int32_t* labels = reinterpret_cast<int32_t*>(host.data() + l.labels);
  int64_t* keys = reinterpret_cast<int64_t*>(host.data() + l.keys);
  const bool labeled = data.labels.size() == size_t(data.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows_[size_t(i)];
    std::copy_n(data.image(r), size_t(row_bytes_), images + size_t(i) * size_t(row_bytes_));
    const int32_t label = labeled ? data.labels[size_t(r)] : -1;
    labels[i] = label < 0 ? 0 : label;
    keys[i] = r;
  }
  NvtxRange range("loader/resident_upload");
  void* block = backend_->allocate(l.total);
  try {
    backend_->copy_from_host(block, host.data(), l.total);
    backend_->synchronize();  // the staging buffer goes away on return
  } catch (...) {
    backend_->deallocate(block);
    throw;
  }
  block_ = block;
  bytes_ = l.total;
  char* base = static_cast<char*>(block_);
  images_ = reinterpret_cast<const uint8_t*>(base + l.images);
  labels_ = reinterpret_cast<const int32_t*>(base + l.labels);
  keys_ = reinterpret_cast<const int64_t*>(base + l.keys);
}

ResidentData::~ResidentData() {
  if (!block_) return;
  try {
    backend_->synchronize();
    backend_->deallocate(block_);
  } catch (...) {
  }
}

int32_t ResidentData::position_of(int64_t row) const {
  return row >= 0 && row < int64_t(position_.size()) ? position_[size_t(row)] : -1;
}

// ------------------------------------------------------------------------------------------------

ResidentBatches::ResidentBatches(const ResidentData& data, const std::vector<int64_t>& rows,
                                 const BatchStreamOptions& options)
    : data_(data), opt_(options) {
  if (options.batch_size < 1) throw UserError("batch size must be at least 1");
  check_shard(options);
  n_ = int64_t(rows.size());
  if (n_ == 0) throw UserError("no images to batch (empty split)");
  positions_.reserve(rows.size());
  for (const int64_t r : rows) {
    const int32_t p = data.position_of(r);
    if (p < 0) {
      throw std::invalid_argument("ResidentBatches: data-set row " + std::to_string(r) +
                                  " is not held by the resident data");
    }
    positions_.push_back(p);
  }
  batches_ = options.drop_last ? n_ / options.batch_size
                               : (n_ + options.batch_size - 1) / options.batch_size;
  if (batches_ == 0) {
    throw UserError(std::to_string(n_) + " images do not fill one batch of " +
                    std::to_string(options.batch_size) + " (lower the batch size)");
  }
  augment_ = options.augment.enabled();
  order_ = static_cast<int32_t*>(data_.backend().allocate(size_t(n_) * sizeof(int32_t)));
}

ResidentBatches::~ResidentBatches() {
  if (!order_) return;
  try {
    data_.backend().synchronize();
    data_.backend().deallocate(order_);
  } catch (...) {
  }
}

int64_t ResidentBatches::images_per_epoch() const {
  return std::min<int64_t>(batches_ * opt_.batch_size, n_);
}

int ResidentBatches::batch_size(int64_t index) const {
  if (index < 0 || index >= batches_) {
    throw std::out_of_range("ResidentBatches: batch " + std::to_string(index) + " of " +
                            std::to_string(batches_));
  }
  return int(std::min<int64_t>(opt_.batch_size / opt_.shards, n_ - index * opt_.batch_size - shard_offset()));
}

void ResidentBatches::begin_epoch(int64_t epoch) {
  // Unshuffled splits have one order for every epoch.
  if (uploaded_ && (!opt_.shuffle || uploaded_epoch_ == epoch)) return;
  NvtxRange range("loader/epoch_order");
  const auto t0 = Clock::now();
  std::vector<int32_t> order(static_cast<size_t>(n_));
  if (opt_.shuffle) {
    // The BatchStream's order: element k of the epoch is rows[perm[k]].
    const std::vector<int64_t> perm = epoch_permutation(n_, opt_.seed, epoch);
    for (int64_t k = 0; k < n_; ++k) order[size_t(k)] = positions_[size_t(perm[size_t(k)])];
  } else {
    order = positions_;
  }
  // Kernels of the previous epoch may still read order_: the copy is ordered after them on the
  // backend's stream (and, from pageable memory, has taken the data when it returns).
  data_.backend().copy_from_host(order_, order.data(), order.size() * sizeof(int32_t));
  uploaded_ = true;
  uploaded_epoch_ = epoch;
  host_seconds_ += seconds_since(t0);
}

int ResidentBatches::gather(int64_t epoch, int64_t index, uint8_t* images, int32_t* labels,
                            AugmentDraw* draws) {
  const int n = batch_size(index);
  begin_epoch(epoch);
  const auto t0 = Clock::now();
  Backend& be = data_.backend();
  const int32_t* idx = order_ + index * opt_.batch_size + shard_offset();
  be.gather_rows(n, idx, data_.images(), data_.labels(), data_.row_bytes(), images, labels);
  if (augment_) {
    if (!draws) throw std::invalid_argument("ResidentBatches::gather: augmenting needs a draws buffer");
    be.augment_draws(n, idx, data_.keys(), opt_.seed, uint64_t(epoch), opt_.augment, draws);
  }
  host_seconds_ += seconds_since(t0);
  return n;
}

int ResidentBatches::load(Graph& graph, int64_t epoch, int64_t index) {
  const int n = batch_size(index);
  if (n > graph.max_batch()) {
    throw std::logic_error("ResidentBatches::load: batch of " + std::to_string(n) +
                           " exceeds the graph's planned " + std::to_string(graph.max_batch()));
  }
  const Shape& in = graph.input_shape();
  if (in.rank() != 3 || in.dims[0] != data_.height() || in.dims[1] != data_.width() || in.dims[2] != 1) {
    throw std::logic_error("ResidentBatches::load: the graph's input " + in.str() + " is not " +
                           std::to_string(data_.height()) + "x" + std::to_string(data_.width()) +
                           "x1 images");
  }
  gather(epoch, index, graph.images(), graph.labels(), augment_ ? graph.draws() : nullptr);
  graph.convert_images(n, augment_);
  return n;
}

double ResidentBatches::take_host_seconds() {
  const double s = host_seconds_;
  host_seconds_ = 0.0;
  return s;
}

}  // namespace fer::loaders
