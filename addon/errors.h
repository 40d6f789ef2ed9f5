// The one place where core Status codes become JavaScript exceptions. The addon throws a plain
// Error carrying `code` (the protocol name, e.g. E_ENDPOINT_IN_USE); lib/errors.ts maps codes to
// the typed error classes. No C++ exception ever crosses into Node-API: every entry point
// catches what the core or the standard library may throw (bad_alloc) and converts it here.
#pragma once

#include <napi.h>

#include <exception>
#include <string>
#include <string_view>

#include "status.h"

namespace switchboard::addon {

inline void throw_error(Napi::Env env, std::string_view code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, std::string(code)));
  err.ThrowAsJavaScriptException();
}

inline void throw_status(Napi::Env env, const Status& status) {
  throw_error(env, wire_name(status.code()), status.message());
}

// Runs `body`, turning an escaping C++ exception into a JavaScript one.
template <typename Fn>
auto guarded(Napi::Env env, Fn&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    throw_error(env, "E_NO_MEMORY", "switchboard: out of memory");
  } catch (const std::exception& e) {
    throw_error(env, "E_INTERNAL", std::string("switchboard: internal error: ") + e.what());
  }
  return decltype(body())();
}

}  // namespace switchboard::addon
