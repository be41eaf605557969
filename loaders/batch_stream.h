#pragma once
// The batch stream: a loader thread that gathers shuffled batches of uint8 images (plus int32
// labels and, for training, one AugmentDraw per image) into a ring of host buffers, and on CUDA
// copies each batch to the device on its own stream.
//
//   fer::loaders::BatchStreamOptions o;
//   o.batch_size = 64; o.seed = 42; o.augment = fer::kernels::AugmentConfig::original_project();
//   fer::loaders::BatchStream train(data, data.train_rows, o, backend);   // starts the thread
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     while (const fer::loaders::Batch* b = train.next()) {   // nullptr: end of this epoch
//       backend->images_to_float(b->size, 48, 48, b->pixels, b->draws, x);   // on the compute stream
//       ... forward/backward using b->labels ...
//       train.release();   // after the last op that reads b->pixels/labels/draws is ENQUEUED
//     }
//     double stall = train.last_epoch_stats().stall_seconds;
//   }
//
// Ordering on CUDA (backend->kind() == cuda, FER_HAVE_CUDA builds):
//   * host buffers are pinned (cudaHostAlloc); the H2D copies of slot s run on a dedicated
//     non-blocking copy stream, which first waits (cudaStreamWaitEvent) on consumed[s], the
//     event recorded on the compute stream when the consumer released the slot's previous
//     batch, so a copy never overwrites device memory a kernel may still read; copied[s] is
//     recorded after the copies;
//   * next() makes the compute stream (backend->native_stream()) wait on copied[s]: the host
//     never blocks on the GPU for this, only on the loader thread when no batch is ready (that
//     time is the stall reported per epoch);
//   * the loader thread refills host slot s only after copied[s] has completed.
// Call next() and release() outside CUDA stream capture: they order the compute stream with
// events recorded outside it. A consumer replaying a captured step graph either captures one
// graph per ring slot (Batch::slot) or copies the batch into its own fixed input buffer first.
// On the CPU (no backend, or a CPU backend) the buffers are plain 64-byte-aligned host memory and
// Batch's backend pointers equal its host pointers.
//
// Reproducibility: epoch e's order is epoch_permutation(n, seed, e) (Philox-driven Fisher-Yates,
// the same on every platform), and image row r's draw is kernels::augment_draw(seed, e, r, cfg).
// Batch contents never depend on timing or on the ring size. loaders/resident_data.h's
// ResidentBatches delivers the same batches from data held in backend memory.
//
// Lifetime: the Dataset and the Backend must outlive the stream. The destructor stops and joins
// the loader thread (also when the consumer leaves early or by an exception) and waits for
// in-flight copies before freeing buffers. An exception on the loader thread (including one from
// producer_hook) is rethrown by the next call to next().
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/common/augment.h"
#include "loaders/dataset.h"

namespace fer {
class Backend;
}

namespace fer::loaders {

// Philox counter tag of the shuffling stream (word 3 of the counter).
constexpr uint32_t kPermutationStreamTag = 0x5045524Du;  // "PERM"

// A permutation of 0..n-1 for `epoch`: Fisher-Yates from i = n-1 down to 1, swapping i with
// j = floor(u64 * (i + 1) / 2^64), u64 the first two words of Philox(counter (i lo, i hi,
// epoch, tag), key seed).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

struct BatchStreamOptions {
  int batch_size = 64;
  bool shuffle = true;     // false: rows in the given order (validation, prediction)
  bool drop_last = true;   // true: batches_per_epoch = n / batch_size, as Keras'
                           // steps_per_epoch = n // batch; false: a last partial batch
  kernels::AugmentConfig augment;  // !augment.enabled(): batches carry no draws
  uint64_t seed = 0;
  int64_t first_epoch = 0;         // resume: the first epoch produced
  int ring_slots = 4;              // buffers in the ring (>= 2)
  // Data parallelism (engine/training/distributed_training.h): this process is rank `shard` of
  // `shards` and delivers, of every batch of batch_size images, only its contiguous slice
  // [shard * batch_size / shards, (shard + 1) * batch_size / shards): the images of step k do not
  // depend on the number of ranks. Needs drop_last and batch_size divisible by shards
  // (std::invalid_argument otherwise).
  int shard = 0;
  int shards = 1;
  // Called on the loader thread before each batch is gathered (tests: simulate a slow reader;
  // instrumentation). May throw: the exception reaches the consumer through next().
  std::function<void(int64_t epoch, int64_t batch)> producer_hook;
};

// std::invalid_argument unless 0 <= shard < shards and, when shards > 1, drop_last holds and
// batch_size divides by shards (BatchStream and ResidentBatches check their options with it).
void check_shard(const BatchStreamOptions& options);

struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;       // batch number within the epoch
  int size = 0;            // images in this batch (batch_size, or fewer for a last partial one)
  bool last_in_epoch = false;
  // Host memory (pinned on CUDA): size images [size, h, w], labels, draws (null when not
  // augmenting), and the Dataset row of each image.
  const uint8_t* host_pixels = nullptr;
  const int32_t* host_labels = nullptr;
  const AugmentDraw* host_draws = nullptr;
  const int64_t* rows = nullptr;
  // The same in the backend's memory (device pointers on CUDA; equal to the host ones on CPU).
  const uint8_t* pixels = nullptr;
  const int32_t* labels = nullptr;
  const AugmentDraw* draws = nullptr;
  int slot = -1;  // ring slot (a consumer capturing CUDA graphs may key graphs by slot)
};

struct EpochStats {
  int64_t epoch = -1;
  int64_t batches = 0;
  int64_t images = 0;
  double stall_seconds = 0.0;  // time next() waited for the loader thread
  double seconds = 0.0;        // from the epoch's first next() to its end-of-epoch nullptr
};

class BatchStream {
 public:
  // rows: the Dataset rows to stream (e.g. data.train_rows). backend: null for host-only
  // batches; a CUDA backend enables pinned buffers, device slots and event ordering.
  // Throws UserError when rows is empty or (drop_last) smaller than one batch.
  BatchStream(const Dataset& data, std::vector<int64_t> rows, const BatchStreamOptions& options,
              Backend* backend = nullptr);
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  int64_t batches_per_epoch() const;
  int64_t images_per_epoch() const;  // images delivered per epoch (n, or fewer with drop_last)
  int64_t size() const;              // rows streamed
  bool pinned() const;               // host buffers are cudaHostAlloc'ed
  bool on_device() const;            // batches are copied to the device

  // The next batch of the current epoch, or nullptr once at the end of each epoch (the
  // following call starts the next epoch). Releases the previously returned batch if the caller
  // did not. Blocks while the loader thread is behind (counted as stall).
  const Batch* next();
  // Gives the current batch's slot back. On CUDA this records the slot's "consumed" event on the
  // compute stream, so call it after the last use of the batch has been enqueued there.
  void release();

  EpochStats last_epoch_stats() const;     // the most recently finished epoch
  EpochStats current_epoch_stats() const;  // the epoch in progress

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fer::loaders
