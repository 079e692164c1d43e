// One helper for tests of user errors (shared/STYLE.md, tests rule 2): `f` must throw an error of
// type E whose message contains every fragment given.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <typeinfo>

#include "flowlik/error.h"

namespace flowlik::test {

// Returns the message, so that a test can check more of it; an empty string after a failure.
template <typename E = Error, typename F>
std::string expect_error(F&& f, std::initializer_list<std::string_view> fragments = {}) {
  try {
    f();
  } catch (const E& e) {
    const std::string message = e.what();
    for (const auto fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "the message does not contain \"" << fragment << "\": " << message;
    }
    return message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got " << typeid(e).name() << ": "
                  << e.what();
    return {};
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
  return {};
}

}  // namespace flowlik::test
