#pragma once
// Small text helpers for the readers' error messages.
#include <cstddef>
#include <string>
#include <string_view>

namespace fer::loaders {

// 'text' in single quotes with control and non-ASCII bytes escaped (\x00) and at most max_chars
// characters shown ("..." marks a cut), so a message stays one readable line whatever the input.
std::string quoted_excerpt(const char* data, size_t size, size_t max_chars);

bool equals_ignore_case(std::string_view a, std::string_view b);
std::string to_lower(std::string_view s);

// "35,340"
std::string with_thousands(long long v);

}  // namespace fer::loaders
