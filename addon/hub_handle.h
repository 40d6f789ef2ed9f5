// NativeHub: the JavaScript handle of a core Hub started in this process, plus the in-process
// ports (connectLocal) through which this process's own bus joins it.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "delivery.h"
#include "hub.h"

namespace switchboard::addon {

// Turns hub membership events into calls of onPeer({type, id, role, name, pid, code, message}).
struct PeerSink {
  using Item = PeerEvent;
  Napi::FunctionReference on_peer;
  static bool deliver(Napi::Env env, Delivery<PeerSink>& delivery, std::vector<Item>& items,
                      std::size_t& done);
  static std::size_t cost(const Item&) { return 0; }  // joins and leaves: never a backlog
};

class HubHandle : public Napi::ObjectWrap<HubHandle> {
 public:
  // localHubs(): the hubs running in this process, across all its JavaScript environments, so a
  // worker thread can join its process's hub without the token passing through process.env.
  static Napi::Value local_hubs(const Napi::CallbackInfo& info);
  static Napi::Function define(Napi::Env env);
  // startHub(options, onPeer): starts a hub or throws (E_ENDPOINT_IN_USE, E_ENDPOINT_UNSAFE...).
  static Napi::Value start(const Napi::CallbackInfo& info);

  explicit HubHandle(const Napi::CallbackInfo& info);
  ~HubHandle() override;

 private:
  Napi::Value connect_local(const Napi::CallbackInfo& info);
  // acceptPeers(): begins accepting connections (a hub started with acceptAtStart: false).
  Napi::Value accept_peers(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value ref(const Napi::CallbackInfo& info);
  Napi::Value unref(const Napi::CallbackInfo& info);
  void shutdown();
  static void on_env_teardown(void* self);

  napi_env env_ = nullptr;
  std::unique_ptr<Hub> hub_;
  Delivery<PeerSink>* peers_ = nullptr;
  bool hooked_ = false;
};

}  // namespace switchboard::addon
