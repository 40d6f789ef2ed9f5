// The addon's entry point: registers NativePort and NativeHub per environment and exports
// startHub(), connect(), protocolVersion and externalBuffers. See lib/native.ts for the surface.
#include <napi.h>

#include "envelope.h"
#include "errors.h"
#include "hub_handle.h"
#include "instance.h"
#include "options.h"
#include "port_handle.h"

namespace switchboard::addon {
namespace {

// connect(options, onFrames, onState): a client that keeps (re)connecting to a hub.
Napi::Value connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsFunction() ||
        !info[2].IsFunction()) {
      throw_error(env, "E_INVALID_ARGUMENT", "connect(options, onFrames, onState)");
      return env.Undefined();
    }
    ClientOptions opt;
    if (Status s = read_client_options(info[0].As<Napi::Object>(), opt); !s.ok()) {
      throw_status(env, s);
      return env.Undefined();
    }
    Delivery<PortSink>* delivery =
        PortHandle::make_delivery(env, info[1].As<Napi::Function>(), info[2].As<Napi::Function>());
    if (delivery == nullptr) {
      throw_error(env, "E_CLOSED", "connect(): this JavaScript environment is shutting down");
      return env.Undefined();
    }
    auto client = std::make_unique<Client>(std::move(opt), PortHandle::callbacks_for(delivery));
    if (Status s = client->start(); !s.ok()) {
      delivery->release();
      throw_status(env, s);
      return env.Undefined();
    }
    return PortHandle::wrap(env, std::move(client), delivery);
  });
}

// Electron's V8 memory cage forbids ArrayBuffers over foreign memory; Node.js allows them.
bool external_buffers_allowed(Napi::Env env) {
  static std::uint8_t probe = 0;
  napi_value value = nullptr;
  napi_status status = napi_create_external_arraybuffer(
      env, &probe, 1, [](napi_env, void*, void*) {}, nullptr, &value);
  return status == napi_ok;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto instance = std::make_unique<Instance>();
  instance->port_class = Napi::Persistent(PortHandle::define(env));
  instance->hub_class = Napi::Persistent(HubHandle::define(env));
  env.SetInstanceData(instance.release());  // freed by the runtime at environment teardown
  exports.Set("protocolVersion", Napi::Number::New(env, kProtocolVersion));
  exports.Set("externalBuffers", Napi::Boolean::New(env, external_buffers_allowed(env)));
  exports.Set("startHub", Napi::Function::New<HubHandle::start>(env, "startHub"));
  exports.Set("connect", Napi::Function::New<connect>(env, "connect"));
  exports.Set("localHubs", Napi::Function::New<HubHandle::local_hubs>(env, "localHubs"));
  return exports;
}

}  // namespace
}  // namespace switchboard::addon

// NODE_API_MODULE pastes its argument into an identifier, so it needs an unqualified name.
static Napi::Object InitSwitchboard(Napi::Env env, Napi::Object exports) {
  return switchboard::addon::init(env, exports);
}
NODE_API_MODULE(switchboard, InitSwitchboard)
