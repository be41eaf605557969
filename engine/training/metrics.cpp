#include "engine/training/metrics.h"

#include <algorithm>
#include <cstdio>

namespace fer::training {

ConfusionMatrix::ConfusionMatrix(int classes) : classes_(classes), counts_(size_t(classes) * classes, 0) {}

void ConfusionMatrix::add(int truth, int predicted) {
  if (truth < 0 || truth >= classes_ || predicted < 0 || predicted >= classes_) return;
  ++counts_[size_t(truth) * classes_ + predicted];
}

int64_t ConfusionMatrix::row_total(int truth) const {
  int64_t s = 0;
  for (int p = 0; p < classes_; ++p) s += at(truth, p);
  return s;
}

int64_t ConfusionMatrix::column_total(int predicted) const {
  int64_t s = 0;
  for (int t = 0; t < classes_; ++t) s += at(t, predicted);
  return s;
}

int64_t ConfusionMatrix::total() const {
  int64_t s = 0;
  for (int64_t c : counts_) s += c;
  return s;
}

int64_t ConfusionMatrix::correct() const {
  int64_t s = 0;
  for (int c = 0; c < classes_; ++c) s += at(c, c);
  return s;
}

double ConfusionMatrix::accuracy() const {
  const int64_t t = total();
  return t ? double(correct()) / double(t) : 0.0;
}

std::vector<ClassScores> ConfusionMatrix::scores() const {
  std::vector<ClassScores> out(classes_);
  for (int c = 0; c < classes_; ++c) {
    ClassScores& s = out[c];
    const int64_t tp = at(c, c), predicted = column_total(c), actual = row_total(c);
    s.support = actual;
    s.precision = predicted ? double(tp) / double(predicted) : 0.0;
    s.recall = actual ? double(tp) / double(actual) : 0.0;
    s.f1 = (s.precision + s.recall) > 0 ? 2.0 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  }
  return out;
}

ClassScores ConfusionMatrix::macro_average() const {
  ClassScores m;
  const auto all = scores();
  for (const auto& s : all) {
    m.precision += s.precision;
    m.recall += s.recall;
    m.f1 += s.f1;
    m.support += s.support;
  }
  if (!all.empty()) {
    m.precision /= double(all.size());
    m.recall /= double(all.size());
    m.f1 /= double(all.size());
  }
  return m;
}

ClassScores ConfusionMatrix::weighted_average() const {
  ClassScores m;
  for (const auto& s : scores()) {
    m.precision += s.precision * double(s.support);
    m.recall += s.recall * double(s.support);
    m.f1 += s.f1 * double(s.support);
    m.support += s.support;
  }
  if (m.support) {
    m.precision /= double(m.support);
    m.recall /= double(m.support);
    m.f1 /= double(m.support);
  }
  return m;
}

namespace {
std::string name_of(const std::vector<std::string>& names, int c) {
  return c < int(names.size()) ? names[c] : "class " + std::to_string(c);
}
}  // namespace

std::string ConfusionMatrix::format_matrix(const std::vector<std::string>& names) const {
  size_t label_width = 10;  // "true\\pred"
  int cell = 7;
  for (int c = 0; c < classes_; ++c) {
    label_width = std::max(label_width, name_of(names, c).size());
    cell = std::max(cell, int(name_of(names, c).size()) + 1);
  }
  for (int64_t v : counts_) cell = std::max(cell, int(std::to_string(v).size()) + 1);
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-*s", int(label_width), "true\\pred");
  out += buf;
  for (int c = 0; c < classes_; ++c) {
    std::snprintf(buf, sizeof buf, " %*s", cell, name_of(names, c).c_str());
    out += buf;
  }
  out += "\n";
  for (int t = 0; t < classes_; ++t) {
    std::snprintf(buf, sizeof buf, "%-*s", int(label_width), name_of(names, t).c_str());
    out += buf;
    for (int p = 0; p < classes_; ++p) {
      std::snprintf(buf, sizeof buf, " %*lld", cell, static_cast<long long>(at(t, p)));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

std::string ConfusionMatrix::format_scores(const std::vector<std::string>& names) const {
  size_t w = 12;
  for (int c = 0; c < classes_; ++c) w = std::max(w, name_of(names, c).size());
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-*s %9s %9s %9s %9s\n", int(w), "class", "precision", "recall",
                "f1-score", "support");
  out += buf;
  const auto all = scores();
  for (int c = 0; c < classes_; ++c) {
    std::snprintf(buf, sizeof buf, "%-*s %9.4f %9.4f %9.4f %9lld\n", int(w), name_of(names, c).c_str(),
                  all[c].precision, all[c].recall, all[c].f1, static_cast<long long>(all[c].support));
    out += buf;
  }
  const ClassScores macro = macro_average(), weighted = weighted_average();
  std::snprintf(buf, sizeof buf, "%-*s %9.4f %9.4f %9.4f %9lld\n", int(w), "macro avg", macro.precision,
                macro.recall, macro.f1, static_cast<long long>(macro.support));
  out += buf;
  std::snprintf(buf, sizeof buf, "%-*s %9.4f %9.4f %9.4f %9lld\n", int(w), "weighted avg",
                weighted.precision, weighted.recall, weighted.f1, static_cast<long long>(weighted.support));
  out += buf;
  return out;
}

}  // namespace fer::training
