#pragma once
// A data set held in the backend's memory, and batches gathered from it there: the training
// path when the uint8 images fit on the device (FER2013: 35,887 x 48 x 48 = 82 MB). The images,
// labels and data-set row ids are copied once; each epoch only its order (int32 per image) is
// uploaded; each step gathers its batch with Backend::gather_rows and computes its augmentation
// draws with Backend::augment_draws, so nothing per step crosses the bus and no loader thread
// runs. Data sets that do not fit go through the BatchStream (loaders/batch_stream.h) instead.
//
//   auto data_on_device = std::make_shared<ResidentData>(data, rows_to_hold, backend);
//   ResidentBatches train(*data_on_device, data.train_rows, stream_options);
//   for (int64_t b = 0; b < train.batches_per_epoch(); ++b) {
//     const int n = train.load(graph, epoch, b);   // graph.images/labels/draws -> graph.input
//     ... forward/backward with n ...
//   }
//
// Same batches as the stream: for the same Dataset, rows and BatchStreamOptions, batch b of
// epoch e holds the same images, labels and draws, in the same order, as the BatchStream's batch
// b of epoch e (the order is epoch_permutation applied to `rows`; draws are augment_draw keyed by
// the data-set row). Training with either gives bit-identical weights on the CPU backend.
//
// Every call enqueues work on the backend's compute stream (or runs it, on the CPU); nothing here
// synchronises except the order upload at an epoch's first batch (a pageable host-to-device copy).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"

namespace fer {
class Graph;
}

namespace fer::loaders {

// ---- resident or streamed: the decision ----

enum class ResidentMode { automatic, on, off };
// "auto", "on", "off" -> mode; false for anything else.
bool parse_resident_mode(const std::string& text, ResidentMode* out);
const char* resident_mode_name(ResidentMode mode);  // "auto", "on", "off"

// In automatic mode the data goes resident only on a CUDA backend whose free memory (asked
// before the data is placed) is at least kResidentFreeMemoryFactor times the bytes it needs: the
// rest stays for the graph's arena, cuDNN workspaces and other processes.
constexpr size_t kResidentFreeMemoryFactor = 4;

struct ResidentChoice {
  bool resident = false;
  std::string reason;  // one line for the run's log: "automatic: 82 MiB fit in 79 GiB free ..."
};
// The rule, without touching a device (unit-testable): off -> stream; on -> resident on any
// backend; automatic -> resident when kind is cuda, the free memory is known and
// bytes * kResidentFreeMemoryFactor <= free_bytes; stream otherwise (the CPU streams: its loader
// thread overlaps the gather with compute).
ResidentChoice choose_resident(ResidentMode mode, DeviceKind kind, size_t bytes, bool memory_known,
                               size_t free_bytes);
// The same, asking backend.memory_info().
ResidentChoice choose_resident(ResidentMode mode, Backend& backend, size_t bytes);

// Backend bytes a ResidentData of `rows` rows of `data` allocates.
size_t resident_bytes(const Dataset& data, int64_t rows);

// ---- the data ----

class ResidentData {
 public:
  // Copies the images and labels of `rows` (data-set rows, any order, no repeats; negative
  // labels of unlabeled rows are held as 0) and their data-set row ids (the augmentation draw
  // keys) into one allocation of backend memory. Throws UserError for no rows, out_of_range for a
  // row outside the data set, invalid_argument for a repeated row; DeviceError when the backend
  // cannot allocate. The Dataset may be released afterwards.
  ResidentData(const Dataset& data, std::vector<int64_t> rows, std::shared_ptr<Backend> backend);
  ~ResidentData();
  ResidentData(const ResidentData&) = delete;
  ResidentData& operator=(const ResidentData&) = delete;

  int64_t size() const { return int64_t(rows_.size()); }
  size_t bytes() const { return bytes_; }
  int64_t row_bytes() const { return row_bytes_; }
  int height() const { return height_; }
  int width() const { return width_; }
  const std::vector<int64_t>& rows() const { return rows_; }  // data-set row of each position
  // Position of data-set row r in the resident arrays; -1 when it is not held.
  int32_t position_of(int64_t row) const;
  Backend& backend() const { return *backend_; }

  // Backend memory: [size(), row_bytes()] images, [size()] labels, [size()] data-set rows.
  const uint8_t* images() const { return images_; }
  const int32_t* labels() const { return labels_; }
  const int64_t* keys() const { return keys_; }

 private:
  std::shared_ptr<Backend> backend_;  // owns the allocation's allocator
  std::vector<int64_t> rows_;
  std::vector<int32_t> position_;     // data-set row -> position, -1 when not held
  int64_t row_bytes_ = 0;
  int height_ = 0, width_ = 0;
  size_t bytes_ = 0;
  void* block_ = nullptr;
  const uint8_t* images_ = nullptr;
  const int32_t* labels_ = nullptr;
  const int64_t* keys_ = nullptr;
};

// ---- batches of one split ----

class ResidentBatches {
 public:
  // Batches of `rows` (every one held by `data`) with the BatchStream's batch_size, shuffle,
  // drop_last, augment and seed (ring_slots, first_epoch and producer_hook do not apply: any
  // (epoch, batch) can be gathered directly). Throws UserError for an empty split or one smaller
  // than a batch (drop_last), as the BatchStream does; invalid_argument for a row data lacks.
  // `data` must outlive this object.
  ResidentBatches(const ResidentData& data, const std::vector<int64_t>& rows,
                  const BatchStreamOptions& options);
  ~ResidentBatches();
  ResidentBatches(const ResidentBatches&) = delete;
  ResidentBatches& operator=(const ResidentBatches&) = delete;

  int64_t batches_per_epoch() const { return batches_; }
  int64_t images_per_epoch() const;
  int64_t size() const { return n_; }
  int batch_size(int64_t index) const;  // images in batch `index` (the last may be partial)
  bool augment() const { return augment_; }

  // Uploads `epoch`'s order (its permutation of the split as backend positions) unless it is the
  // one already there; unshuffled splits upload once. gather() calls it; call it yourself before
  // capturing a step into a CUDA graph, since the upload is a host-to-device copy from pageable
  // memory.
  void begin_epoch(int64_t epoch);
  // Gathers batch `index` of `epoch` into backend memory: images [n, h, w], labels [n] and, when
  // augmenting, draws [n] (draws may be null otherwise), after begin_epoch(epoch). Returns n.
  int gather(int64_t epoch, int64_t index, uint8_t* images, int32_t* labels, AugmentDraw* draws);
  // gather() into graph.images()/labels()/draws(), then graph.convert_images(n, augment()).
  int load(Graph& graph, int64_t epoch, int64_t index);

  // Host seconds the caller spent waiting for data since the last call (the epoch orders: their
  // permutation and upload; enqueuing the gathers, or running them on the CPU): this path's
  // counterpart of the stream's stall.
  double take_host_seconds();

 private:
  const ResidentData& data_;
  BatchStreamOptions opt_;
  std::vector<int32_t> positions_;  // position in data_ of each row of the split, split order
  // Where this rank's slice starts inside each batch (BatchStreamOptions::shard).
  int64_t shard_offset() const { return int64_t(opt_.shard) * (opt_.batch_size / opt_.shards); }
  int64_t n_ = 0, batches_ = 0;
  bool augment_ = false;
  int32_t* order_ = nullptr;        // backend memory: [n_] positions in the uploaded epoch's order
  int64_t uploaded_epoch_ = -1;
  bool uploaded_ = false;
  double host_seconds_ = 0.0;
};

}  // namespace fer::loaders
