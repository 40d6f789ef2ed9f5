// The one place where core Status codes become JavaScript exceptions. The addon throws a plain
// Error carrying `code` (the protocol name, e.g. E_ENDPOINT_IN_USE); lib/errors.ts maps codes to
// the typed error classes. No C++ exception ever crosses into Node-API: every entry point
// catches what the core or the standard library may throw (bad_alloc) and converts it here.
// No throw from here can abort the process (see throw_error and addon/README.md).
#pragma once

#include <napi.h>

#include <exception>
#include <string>
#include <string_view>

#include "status.h"

namespace switchboard::addon {

// Throws an Error with `code`, or nothing where no throw can happen: while a worker is being
// terminated (or the environment torn down) every call that could run JavaScript, napi_throw
// included, fails, and node-addon-api's own throw treats that as fatal (it aborts the whole
// process). Nobody could catch the error there anyway. Raw Node-API, so no step can abort; an
// exception already pending is left as it is (a second throw would be fatal too).
inline void throw_error(napi_env env, std::string_view code, std::string_view message) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return;
  napi_value code_value = nullptr;
  napi_value message_value = nullptr;
  napi_value error = nullptr;
  if (napi_create_string_utf8(env, code.data(), code.size(), &code_value) != napi_ok ||
      napi_create_string_utf8(env, message.data(), message.size(), &message_value) != napi_ok ||
      napi_create_error(env, code_value, message_value, &error) != napi_ok) {
    return;
  }
  (void)napi_throw(env, error);  // napi_pending_exception while terminating: nothing to do
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
