#pragma once
// Two kinds of failure: a user's mistake (config, data, paths; exit status 2, message names the
// file, line or key) and an internal/device failure (a CUDA call, an impossible state).
#include <stdexcept>
#include <string>

namespace fer {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class DeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_user_error(const std::string& message);

}  // namespace fer
