#pragma once
// Strict reading of one TOML table: every read records its key, finish() rejects the keys nobody
// read (a typo must not be silently ignored), and every error names file, line and key.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace fer::models {

class TableReader {
 public:
  // context names the table in messages, e.g. "[train]" or "layers[3] (Conv2D)".
  TableReader(const toml::table& table, std::string file, std::string context);

  bool has(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key);
  std::optional<double> get_number(const std::string& key);  // integer or float
  std::optional<std::string> get_string(const std::string& key);
  std::optional<bool> get_bool(const std::string& key);
  // An integer or a two-element array of integers, as Keras takes kernel_size/strides/pool_size.
  std::optional<std::pair<int, int>> get_int_pair(const std::string& key);
  std::optional<std::vector<int64_t>> get_int_list(const std::string& key);
  std::optional<std::vector<std::string>> get_string_list(const std::string& key);
  // A sub-table (e.g. [callbacks.early_stopping]); null when absent.
  const toml::table* get_table(const std::string& key);

  int64_t require_int(const std::string& key);
  std::string require_string(const std::string& key);
  // A string that must be one of `allowed`.
  std::string get_choice(const std::string& key, const std::vector<std::string>& allowed,
                         const std::string& fallback);

  // Throws UserError "FILE:LINE: CONTEXT: key 'KEY': MESSAGE" (line of the key, else the table).
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  [[noreturn]] void fail_table(const std::string& message) const;
  // For keys another reader consumes (e.g. the [[layers]] array).
  void mark_read(const std::string& key) { read_.insert(key); }
  // Rejects unread keys.
  void finish() const;

  const std::string& file() const { return file_; }
  const std::string& context() const { return context_; }
  int line() const;

 private:
  const toml::node* node(const std::string& key);
  const toml::table& table_;
  std::string file_, context_;
  std::set<std::string> read_;
};

}  // namespace fer::models
