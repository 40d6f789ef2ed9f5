// Reads option objects from JavaScript into core option structs. lib/ has already checked
// every option with a precise message; these checks only guard the boundary against a caller
// that bypassed lib/.
#pragma once

#include <napi.h>

#include <chrono>
#include <string>

#include "client.h"
#include "hub.h"
#include "status.h"

namespace switchboard::addon {

namespace detail {

inline Status read_string(const Napi::Object& o, const char* key, std::string& out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsString()) return Status(Errc::invalid_argument, std::string(key) + " must be a string");
  out = v.As<Napi::String>().Utf8Value();
  return {};
}

template <typename T>
Status read_count(const Napi::Object& o, const char* key, T& out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsNumber()) return Status(Errc::invalid_argument, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0) {
    return Status(Errc::invalid_argument, std::string(key) + " must be a non-negative integer");
  }
  out = static_cast<T>(d);
  return {};
}

inline Status read_ms(const Napi::Object& o, const char* key, std::chrono::milliseconds& out) {
  double ms = -1;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsNumber()) return Status(Errc::invalid_argument, std::string(key) + " must be a number");
  ms = v.As<Napi::Number>().DoubleValue();
  if (!(ms > 0)) return Status(Errc::invalid_argument, std::string(key) + " must be positive");
  out = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  return {};
}

// Milliseconds where 0 has a meaning (off).
inline Status read_ms_or_zero(const Napi::Object& o, const char* key,
                              std::chrono::milliseconds& out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  double ms = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(ms >= 0)) return Status(Errc::invalid_argument, std::string(key) + " must be >= 0");
  out = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  return {};
}

}  // namespace detail

inline Status read_hub_options(const Napi::Object& o, HubOptions& opt) {
  using namespace detail;
  std::string overflow;
  for (Status s : {read_string(o, "endpoint", opt.endpoint), read_string(o, "token", opt.token),
                   read_string(o, "name", opt.name), read_count(o, "maxFrame", opt.max_frame),
                   read_count(o, "highWaterMark", opt.high_water_mark),
                   read_count(o, "lowWaterMark", opt.low_water_mark),
                   read_ms(o, "stallTimeoutMs", opt.stall_timeout),
                   read_ms(o, "handshakeTimeoutMs", opt.handshake_timeout),
                   read_count(o, "handshakeMaxFrame", opt.handshake_max_frame),
                   read_count(o, "maxTopic", opt.max_topic),
                   read_count(o, "maxSubscriptionsPerPeer", opt.max_subscriptions_per_peer),
                   read_count(o, "maxHandlersPerPeer", opt.max_handlers_per_peer),
                   read_count(o, "maxPendingInvokesPerPeer", opt.max_pending_invokes_per_peer),
                   read_count(o, "maxConnections", opt.max_connections),
                   read_count(o, "maxHandshaking", opt.max_handshaking),
                   read_ms_or_zero(o, "pingIntervalMs", opt.ping_interval),
                   read_string(o, "overflow", overflow)}) {
    if (!s.ok()) return s;
  }
  Napi::Value misses = o.Get("pingMisses");
  if (misses.IsNumber()) opt.ping_misses = misses.As<Napi::Number>().Int32Value();
  if (Napi::Value accept = o.Get("acceptAtStart"); accept.IsBoolean()) {
    opt.accept_at_start = accept.As<Napi::Boolean>().Value();
  } else if (!accept.IsUndefined() && !accept.IsNull()) {
    return Status(Errc::invalid_argument, "acceptAtStart must be a boolean");
  }
  if (overflow == "disconnect") {
    opt.overflow = OverflowPolicy::disconnect;
  } else if (overflow.empty() || overflow == "drop") {
    opt.overflow = OverflowPolicy::drop;
  } else {
    return Status(Errc::invalid_argument, "overflow must be 'drop' or 'disconnect'");
  }
  return {};
}

// A page's grants: { emit, subscribe, invoke, handle }, each an array of names and 'prefix*'
// patterns (core/grants.h). A missing list grants nothing.
inline Status read_grants(const Napi::Object& o, Grants& out) {
  for (auto [key, list] : {std::pair<const char*, std::vector<std::string>*>{"emit", &out.emit},
                           {"subscribe", &out.subscribe},
                           {"invoke", &out.invoke},
                           {"handle", &out.handle}}) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) continue;
    if (!v.IsArray()) {
      return Status(Errc::invalid_argument, std::string("allow.") + key + " must be an array");
    }
    Napi::Array a = v.As<Napi::Array>();
    for (std::uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value item = a.Get(i);
      if (!item.IsString()) {
        return Status(Errc::invalid_argument,
                      std::string("allow.") + key + " must hold strings (names or 'prefix*')");
      }
      list->push_back(item.As<Napi::String>().Utf8Value());
    }
  }
  return {};
}

inline Status read_client_options(const Napi::Object& o, ClientOptions& opt) {
  using namespace detail;
  int max_attempts = -1;
  Napi::Value attempts = o.Get("maxAttempts");
  if (attempts.IsNumber()) max_attempts = attempts.As<Napi::Number>().Int32Value();
  opt.max_attempts = max_attempts;
  for (Status s : {read_string(o, "endpoint", opt.endpoint), read_string(o, "token", opt.token),
                   read_string(o, "role", opt.role), read_string(o, "name", opt.name),
                   read_ms(o, "backoffInitialMs", opt.backoff_initial),
                   read_ms(o, "backoffMaxMs", opt.backoff_max),
                   read_count(o, "offlineMaxFrames", opt.offline_max_frames),
                   read_count(o, "offlineMaxBytes", opt.offline_max_bytes),
                   read_count(o, "maxFrame", opt.max_frame)}) {
    if (!s.ok()) return s;
  }
  return {};
}

}  // namespace switchboard::addon
