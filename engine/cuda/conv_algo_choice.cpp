#include "engine/cuda/conv_algo_choice.h"

#include <algorithm>
#include <tuple>

namespace fer {

std::vector<size_t> conv_algo_try_order(const std::vector<ConvAlgoCandidate>& candidates,
                                        size_t workspace_cap, bool deterministic, int excluded_math,
                                        const std::vector<int>& preference) {
  std::vector<size_t> order;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const ConvAlgoCandidate& c = candidates[i];
    if (!c.ok || c.workspace > workspace_cap || c.math == excluded_math) continue;
    if (deterministic && !c.deterministic) continue;
    order.push_back(i);
  }
  if (!deterministic) return order;  // cuDNN's own order: measured fastest first

  const auto rank = [&](int algo) {
    const auto it = std::find(preference.begin(), preference.end(), algo);
    return it != preference.end() ? int(it - preference.begin()) : int(preference.size()) + algo;
  };
  // Sort by (preference rank, math, workspace): the workspace key only orders equal pairs so that
  // the merge below keeps the same entry whatever the input order.
  const auto key = [&](size_t i) {
    return std::make_tuple(rank(candidates[i].algo), candidates[i].math, candidates[i].workspace);
  };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  // One entry per (algorithm, math type): the one asking the largest workspace is kept, which is
  // safe whichever list the pair came from.
  std::vector<size_t> merged;
  for (size_t i : order) {
    if (!merged.empty() && candidates[merged.back()].algo == candidates[i].algo &&
        candidates[merged.back()].math == candidates[i].math) {
      merged.back() = i;
      continue;
    }
    merged.push_back(i);
  }
  return merged;
}

}  // namespace fer
