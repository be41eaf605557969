#pragma once
// Test helpers for the errors a user can cause (fer::UserError): the message of a call that must
// be refused, or a check that it names every expected part (file, line, key, value).
#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "engine/error.h"

namespace fer::test_errors {

// Runs f and returns its fer::UserError message. When f throws nothing the test fails with
// `if_accepted` and "" is returned; another exception propagates (gtest reports it).
template <typename F>
std::string user_error_of(F&& f, const std::string& if_accepted = "expected a fer::UserError") {
  try {
    f();
  } catch (const fer::UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << if_accepted;
  return "";
}

// Runs fn, expects a fer::UserError whose message contains every one of `parts`.
inline void expect_user_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected fer::UserError containing '" << (parts.empty() ? "" : parts[0]) << "'";
  } catch (const fer::UserError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected fer::UserError, got another exception: " << e.what();
  }
}

}  // namespace fer::test_errors
