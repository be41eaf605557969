#include "loaders/batch_stream.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/nvtx.h"
#include "kernels/common/philox.h"

#if FER_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace fer::loaders {
namespace {

// High 64 bits of a 64x64-bit product, portable.
uint64_t mul_high64(uint64_t a, uint64_t b) {
  const uint64_t a_lo = uint32_t(a), a_hi = a >> 32, b_lo = uint32_t(b), b_hi = b >> 32;
  const uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
  const uint64_t cross = (lo_lo >> 32) + uint32_t(hi_lo) + lo_hi;
  return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

#if FER_HAVE_CUDA
void cuda_check(cudaError_t err, const char* call) {
  if (err != cudaSuccess) {
    throw DeviceError(std::string("batch stream: ") + call + " failed: " + cudaGetErrorString(err));
  }
}
#define FER_LOADER_CUDA(call) cuda_check((call), #call)
#endif

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(size_t(std::max<int64_t>(n, 0)));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  for (int64_t i = n - 1; i >= 1; --i) {
    const uint64_t ui = uint64_t(i);
    const kernels::Philox4 r = kernels::philox4x32(uint32_t(ui), uint32_t(ui >> 32),
                                                   uint32_t(uint64_t(epoch)),
                                                   kPermutationStreamTag, seed);
    const uint64_t u = (uint64_t(r.v[0]) << 32) | r.v[1];
    const int64_t j = int64_t(mul_high64(u, ui + 1));
    std::swap(perm[size_t(i)], perm[size_t(j)]);
  }
  return perm;
}

struct BatchStream::Impl {
  struct Slot {
    uint8_t* host_pixels = nullptr;
    int32_t* host_labels = nullptr;
    AugmentDraw* host_draws = nullptr;
    std::vector<int64_t> rows;
    uint8_t* dev_pixels = nullptr;
    int32_t* dev_labels = nullptr;
    AugmentDraw* dev_draws = nullptr;
    Batch batch;
#if FER_HAVE_CUDA
    cudaEvent_t copied = nullptr;
    cudaEvent_t consumed = nullptr;
#endif
  };
  struct Ready {
    int slot;  // -1: end of epoch
    int64_t epoch;
  };

  const Dataset& data;
  std::vector<int64_t> rows;
  BatchStreamOptions opt;
  Backend* backend;
  bool augment = false;
  bool cuda = false;
  int64_t batches = 0;
  size_t image_bytes = 0;

  void* host_block = nullptr;
  void* dev_block = nullptr;
  std::vector<Slot> slots;
#if FER_HAVE_CUDA
  int device = 0;
  cudaStream_t copy_stream = nullptr;
  cudaStream_t compute_stream = nullptr;
#endif

  mutable std::mutex mu;
  std::condition_variable cv_producer;  // free slots / epoch bound / stop
  std::condition_variable cv_consumer;  // ready batches / errors
  std::deque<int> free_slots;
  std::deque<Ready> ready;
  bool stop = false;
  std::exception_ptr error;
  int64_t consumer_epoch = 0;  // the epoch next() is delivering
  int current = -1;            // slot held by the consumer
  EpochStats stats, last_stats;
  bool epoch_started = false;
  std::chrono::steady_clock::time_point epoch_t0;
  std::thread thread;

  Impl(const Dataset& d, std::vector<int64_t> r, const BatchStreamOptions& o, Backend* b)
      : data(d), rows(std::move(r)), opt(o), backend(b) {}

  void allocate();
  void free_all() noexcept;
  void produce();
  void fill(int s, int64_t epoch, int64_t b, const std::vector<int64_t>& perm);
  void release_current();
};

void BatchStream::Impl::allocate() {
  const size_t bs = size_t(opt.batch_size);
  const size_t px = align_up(bs * image_bytes, 256);
  const size_t lb = align_up(bs * sizeof(int32_t), 256);
  const size_t dr = augment ? align_up(bs * sizeof(AugmentDraw), 256) : 0;
  const size_t per_slot = px + lb + dr;
  const size_t total = per_slot * slots.size();
#if FER_HAVE_CUDA
  if (cuda) {
    FER_LOADER_CUDA(cudaGetDevice(&device));
    FER_LOADER_CUDA(cudaHostAlloc(&host_block, total, cudaHostAllocDefault));
    dev_block = backend->allocate(total);
    FER_LOADER_CUDA(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking));
    compute_stream = static_cast<cudaStream_t>(backend->native_stream());
    for (Slot& s : slots) {
      FER_LOADER_CUDA(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
      FER_LOADER_CUDA(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming));
    }
  }
#endif
  if (!cuda) {
    host_block = std::aligned_alloc(256, align_up(total, 256));
    if (!host_block) throw std::bad_alloc();
    dev_block = host_block;
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    char* h = static_cast<char*>(host_block) + i * per_slot;
    char* d = static_cast<char*>(dev_block) + i * per_slot;
    s.host_pixels = reinterpret_cast<uint8_t*>(h);
    s.host_labels = reinterpret_cast<int32_t*>(h + px);
    s.host_draws = augment ? reinterpret_cast<AugmentDraw*>(h + px + lb) : nullptr;
    s.dev_pixels = reinterpret_cast<uint8_t*>(d);
    s.dev_labels = reinterpret_cast<int32_t*>(d + px);
    s.dev_draws = augment ? reinterpret_cast<AugmentDraw*>(d + px + lb) : nullptr;
    s.rows.resize(bs);
  }
}

void BatchStream::Impl::free_all() noexcept {
#if FER_HAVE_CUDA
  if (cuda) {
    // Nothing may still read or write the buffers: wait for the copies and for the compute work
    // the consumer enqueued on the batches it released.
    if (copy_stream) cudaStreamSynchronize(copy_stream);
    for (Slot& s : slots) {
      if (s.consumed) cudaEventSynchronize(s.consumed);
      if (s.copied) cudaEventDestroy(s.copied);
      if (s.consumed) cudaEventDestroy(s.consumed);
    }
    if (copy_stream) cudaStreamDestroy(copy_stream);
    if (host_block) cudaFreeHost(host_block);
    if (dev_block) {
      try {
        backend->deallocate(dev_block);
      } catch (...) {
      }
    }
    host_block = dev_block = nullptr;
    return;
  }
#endif
  std::free(host_block);
  host_block = dev_block = nullptr;
}

void BatchStream::Impl::fill(int s, int64_t epoch, int64_t b, const std::vector<int64_t>& perm) {
  Slot& slot = slots[size_t(s)];
  const int64_t n = int64_t(rows.size());
  const int local = opt.batch_size / opt.shards;  // == batch_size without sharding
  const int64_t start = b * opt.batch_size + int64_t(opt.shard) * local;
  const int count = int(std::min<int64_t>(local, n - start));
#if FER_HAVE_CUDA
  // The previous H2D copy from this host buffer must be finished before we overwrite it.
  if (cuda) FER_LOADER_CUDA(cudaEventSynchronize(slot.copied));
#endif
  const uint8_t* src = data.pixels.data();
  for (int k = 0; k < count; ++k) {
    const int64_t row = rows[size_t(perm.empty() ? start + k : perm[size_t(start + k)])];
    slot.rows[size_t(k)] = row;
    std::memcpy(slot.host_pixels + size_t(k) * image_bytes, src + size_t(row) * image_bytes,
                image_bytes);
    slot.host_labels[k] = data.labels[size_t(row)];
    if (augment) {
      slot.host_draws[k] = kernels::augment_draw(opt.seed, uint64_t(epoch), uint64_t(row), opt.augment);
    }
  }
  Batch& bt = slot.batch;
  bt.epoch = epoch;
  bt.index = b;
  bt.size = count;
  bt.last_in_epoch = b + 1 == batches;
  bt.host_pixels = slot.host_pixels;
  bt.host_labels = slot.host_labels;
  bt.host_draws = slot.host_draws;
  bt.rows = slot.rows.data();
  bt.pixels = slot.dev_pixels;
  bt.labels = slot.dev_labels;
  bt.draws = slot.dev_draws;
  bt.slot = s;
#if FER_HAVE_CUDA
  if (cuda) {
    NvtxRange range("loader/h2d");
    FER_LOADER_CUDA(cudaStreamWaitEvent(copy_stream, slot.consumed, 0));
    FER_LOADER_CUDA(cudaMemcpyAsync(slot.dev_pixels, slot.host_pixels, size_t(count) * image_bytes,
                                    cudaMemcpyHostToDevice, copy_stream));
    FER_LOADER_CUDA(cudaMemcpyAsync(slot.dev_labels, slot.host_labels,
                                    size_t(count) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    copy_stream));
    if (augment) {
      FER_LOADER_CUDA(cudaMemcpyAsync(slot.dev_draws, slot.host_draws,
                                      size_t(count) * sizeof(AugmentDraw), cudaMemcpyHostToDevice,
                                      copy_stream));
    }
    FER_LOADER_CUDA(cudaEventRecord(slot.copied, copy_stream));
  }
#endif
}

void BatchStream::Impl::produce() {
  try {
#if FER_HAVE_CUDA
    if (cuda) FER_LOADER_CUDA(cudaSetDevice(device));
#endif
    const int64_t n = int64_t(rows.size());
    std::vector<int64_t> perm;
    for (int64_t epoch = opt.first_epoch;; ++epoch) {
      {
        // Run at most one epoch ahead of the consumer (bounds the queue of end markers).
        std::unique_lock<std::mutex> lk(mu);
        cv_producer.wait(lk, [&] { return stop || epoch <= consumer_epoch + 1; });
        if (stop) return;
      }
      if (opt.shuffle) perm = epoch_permutation(n, opt.seed, epoch);
      for (int64_t b = 0; b < batches; ++b) {
        int s;
        {
          std::unique_lock<std::mutex> lk(mu);
          cv_producer.wait(lk, [&] { return stop || !free_slots.empty(); });
          if (stop) return;
          s = free_slots.front();
          free_slots.pop_front();
        }
        if (opt.producer_hook) opt.producer_hook(epoch, b);
        fill(s, epoch, b, perm);
        {
          std::lock_guard<std::mutex> lk(mu);
          ready.push_back(Ready{s, epoch});
        }
        cv_consumer.notify_one();
      }
      {
        std::lock_guard<std::mutex> lk(mu);
        ready.push_back(Ready{-1, epoch});
      }
      cv_consumer.notify_one();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lk(mu);
      error = std::current_exception();
    }
    cv_consumer.notify_all();
  }
}

void BatchStream::Impl::release_current() {
  if (current < 0) return;
#if FER_HAVE_CUDA
  if (cuda) FER_LOADER_CUDA(cudaEventRecord(slots[size_t(current)].consumed, compute_stream));
#endif
  {
    std::lock_guard<std::mutex> lk(mu);
    free_slots.push_back(current);
    current = -1;
  }
  cv_producer.notify_all();
}

void check_shard(const BatchStreamOptions& o) {
  if (o.shards < 1 || o.shard < 0 || o.shard >= o.shards) {
    throw std::invalid_argument("batch shard " + std::to_string(o.shard) + " of " + std::to_string(o.shards));
  }
  if (o.shards > 1 && (!o.drop_last || o.batch_size % o.shards != 0)) {
    throw std::invalid_argument("sharded batches need drop_last and a batch size divisible by the shard count (" +
                                std::to_string(o.batch_size) + " by " + std::to_string(o.shards) + ")");
  }
}

BatchStream::BatchStream(const Dataset& data, std::vector<int64_t> rows,
                         const BatchStreamOptions& options, Backend* backend)
    : impl_(std::make_unique<Impl>(data, std::move(rows), options, backend)) {
  Impl& m = *impl_;
  if (options.batch_size < 1) throw UserError("batch size must be at least 1");
  if (options.ring_slots < 2) throw UserError("the batch ring needs at least 2 slots");
  check_shard(options);
  const int64_t n = int64_t(m.rows.size());
  if (n == 0) throw UserError(data.source + ": no images to stream (empty split)");
  for (const int64_t r : m.rows) {
    if (r < 0 || r >= data.size()) {
      throw std::out_of_range("BatchStream: row " + std::to_string(r) + " outside the dataset");
    }
  }
  m.batches = options.drop_last ? n / options.batch_size
                                : (n + options.batch_size - 1) / options.batch_size;
  if (m.batches == 0) {
    throw UserError(data.source + ": " + std::to_string(n) + " images do not fill one batch of " +
                    std::to_string(options.batch_size) + " (lower the batch size)");
  }
  m.image_bytes = size_t(data.image_bytes());
  m.augment = options.augment.enabled();
#if FER_HAVE_CUDA
  m.cuda = backend && backend->kind() == DeviceKind::cuda;
#endif
  m.consumer_epoch = options.first_epoch;
  m.slots.resize(size_t(options.ring_slots));
  try {
    m.allocate();
  } catch (...) {
    m.free_all();
    throw;
  }
  for (int i = 0; i < options.ring_slots; ++i) m.free_slots.push_back(i);
  m.stats.epoch = options.first_epoch;
  try {
    m.thread = std::thread([&m] { m.produce(); });
  } catch (...) {
    m.free_all();
    throw;
  }
}

BatchStream::~BatchStream() {
  Impl& m = *impl_;
  try {
    m.release_current();
  } catch (...) {
  }
  {
    std::lock_guard<std::mutex> lk(m.mu);
    m.stop = true;
  }
  m.cv_producer.notify_all();
  m.cv_consumer.notify_all();
  if (m.thread.joinable()) m.thread.join();
  m.free_all();
}

int64_t BatchStream::batches_per_epoch() const { return impl_->batches; }
int64_t BatchStream::images_per_epoch() const {
  const Impl& m = *impl_;
  return std::min<int64_t>(m.batches * m.opt.batch_size, int64_t(m.rows.size()));
}
int64_t BatchStream::size() const { return int64_t(impl_->rows.size()); }
bool BatchStream::pinned() const { return impl_->cuda; }
bool BatchStream::on_device() const { return impl_->cuda; }

const Batch* BatchStream::next() {
  Impl& m = *impl_;
  m.release_current();
  const auto t0 = std::chrono::steady_clock::now();
  if (!m.epoch_started) {
    m.epoch_started = true;
    m.epoch_t0 = t0;
  }
  std::unique_lock<std::mutex> lk(m.mu);
  m.cv_consumer.wait(lk, [&] { return !m.ready.empty() || m.error; });
  if (m.error) std::rethrow_exception(m.error);
  const Impl::Ready r = m.ready.front();
  m.ready.pop_front();
  const auto t1 = std::chrono::steady_clock::now();
  m.stats.stall_seconds += seconds_between(t0, t1);
  if (r.slot < 0) {
    m.stats.epoch = r.epoch;
    m.stats.seconds = seconds_between(m.epoch_t0, t1);
    m.last_stats = m.stats;
    m.stats = EpochStats{};
    m.stats.epoch = r.epoch + 1;
    m.epoch_started = false;
    m.consumer_epoch = r.epoch + 1;
    lk.unlock();
    m.cv_producer.notify_all();
    return nullptr;
  }
  m.current = r.slot;
  Impl::Slot& slot = m.slots[size_t(r.slot)];
  ++m.stats.batches;
  m.stats.images += slot.batch.size;
  lk.unlock();
#if FER_HAVE_CUDA
  if (m.cuda) FER_LOADER_CUDA(cudaStreamWaitEvent(m.compute_stream, slot.copied, 0));
#endif
  return &slot.batch;
}

void BatchStream::release() { impl_->release_current(); }

EpochStats BatchStream::last_epoch_stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->last_stats;
}

EpochStats BatchStream::current_epoch_stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->stats;
}

}  // namespace fer::loaders
