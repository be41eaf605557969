#pragma once
// Classification metrics over a validation or test split: the confusion matrix and per-class
// precision, recall and F1 (zero when a class is never predicted / never present, as
// scikit-learn's zero_division=0), with macro and support-weighted averages.
#include <cstdint>
#include <string>
#include <vector>

namespace fer::training {

struct ClassScores {
  double precision = 0.0, recall = 0.0, f1 = 0.0;
  int64_t support = 0;  // rows whose true class this is
};

class ConfusionMatrix {
 public:
  ConfusionMatrix() = default;
  explicit ConfusionMatrix(int classes);

  // Rows: true class; columns: predicted class. Out-of-range ids are ignored (unlabeled rows).
  void add(int truth, int predicted);
  int classes() const { return classes_; }
  int64_t at(int truth, int predicted) const { return counts_[size_t(truth) * classes_ + predicted]; }
  int64_t row_total(int truth) const;
  int64_t column_total(int predicted) const;
  int64_t total() const;
  int64_t correct() const;
  double accuracy() const;

  std::vector<ClassScores> scores() const;
  ClassScores macro_average() const;
  ClassScores weighted_average() const;

  // Text tables for the terminal, with class names as row/column labels.
  std::string format_matrix(const std::vector<std::string>& names) const;
  std::string format_scores(const std::vector<std::string>& names) const;

 private:
  int classes_ = 0;
  std::vector<int64_t> counts_;
};

}  // namespace fer::training
