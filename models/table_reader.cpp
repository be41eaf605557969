#include "models/table_reader.h"

#include "engine/error.h"

namespace fer::models {

namespace {
std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}
}  // namespace

TableReader::TableReader(const toml::table& table, std::string file, std::string context)
    : table_(table), file_(std::move(file)), context_(std::move(context)) {}

int TableReader::line() const { return int(table_.source().begin.line); }

bool TableReader::has(const std::string& key) const { return table_.contains(key); }

const toml::node* TableReader::node(const std::string& key) {
  read_.insert(key);
  return table_.get(key);
}

void TableReader::fail(const std::string& key, const std::string& message) const {
  const toml::node* n = table_.get(key);
  const int at = n ? int(n->source().begin.line) : line();
  throw UserError(file_ + ":" + std::to_string(at) + ": " + context_ + ": key '" + key + "': " +
                  message);
}

void TableReader::fail_table(const std::string& message) const {
  throw UserError(file_ + ":" + std::to_string(line()) + ": " + context_ + ": " + message);
}

std::optional<int64_t> TableReader::get_int(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (auto v = n->value_exact<int64_t>()) return *v;
  fail(key, "expected an integer, got " + type_name(*n));
}

std::optional<double> TableReader::get_number(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (n->is_integer()) return double(*n->value_exact<int64_t>());
  if (auto v = n->value_exact<double>()) return *v;
  fail(key, "expected a number, got " + type_name(*n));
}

std::optional<std::string> TableReader::get_string(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (auto v = n->value_exact<std::string>()) return *v;
  fail(key, "expected a string, got " + type_name(*n));
}

std::optional<bool> TableReader::get_bool(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (auto v = n->value_exact<bool>()) return *v;
  fail(key, "expected true or false, got " + type_name(*n));
}

std::optional<std::pair<int, int>> TableReader::get_int_pair(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (auto v = n->value_exact<int64_t>()) return std::pair<int, int>(int(*v), int(*v));
  if (const toml::array* a = n->as_array(); a && a->size() == 2 && (*a)[0].is_integer() &&
                                            (*a)[1].is_integer()) {
    return std::pair<int, int>(int(*(*a)[0].value<int64_t>()), int(*(*a)[1].value<int64_t>()));
  }
  fail(key, "expected an integer or a pair of integers like [3, 3], got " + type_name(*n));
}

std::optional<std::vector<int64_t>> TableReader::get_int_list(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  const toml::array* a = n->as_array();
  if (!a) fail(key, "expected an array of integers, got " + type_name(*n));
  std::vector<int64_t> out;
  for (const toml::node& e : *a) {
    auto v = e.value_exact<int64_t>();
    if (!v) fail(key, "expected an array of integers, found " + type_name(e) + " in it");
    out.push_back(*v);
  }
  return out;
}

std::optional<std::vector<std::string>> TableReader::get_string_list(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  const toml::array* a = n->as_array();
  if (!a) fail(key, "expected an array of strings, got " + type_name(*n));
  std::vector<std::string> out;
  for (const toml::node& e : *a) {
    auto v = e.value_exact<std::string>();
    if (!v) fail(key, "expected an array of strings, found " + type_name(e) + " in it");
    out.push_back(*v);
  }
  return out;
}

const toml::table* TableReader::get_table(const std::string& key) {
  const toml::node* n = node(key);
  if (!n) return nullptr;
  if (const toml::table* t = n->as_table()) return t;
  fail(key, "expected a table, got " + type_name(*n));
}

int64_t TableReader::require_int(const std::string& key) {
  if (auto v = get_int(key)) return *v;
  fail(key, "is required");
}

std::string TableReader::require_string(const std::string& key) {
  if (auto v = get_string(key)) return *v;
  fail(key, "is required");
}

std::string TableReader::get_choice(const std::string& key, const std::vector<std::string>& allowed,
                                    const std::string& fallback) {
  auto v = get_string(key);
  if (!v) return fallback;
  for (const auto& a : allowed)
    if (*v == a) return *v;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
  fail(key, "\"" + *v + "\" is not one of " + list);
}

void TableReader::finish() const {
  for (const auto& [key, value] : table_) {
    const std::string k(key.str());
    if (!read_.count(k)) {
      throw UserError(file_ + ":" + std::to_string(value.source().begin.line) + ": " + context_ +
                      ": unknown key '" + k + "'");
    }
  }
}

}  // namespace fer::models
