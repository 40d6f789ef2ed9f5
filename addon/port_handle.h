// NativePort: the JavaScript handle of one core Port (a Client, or a LocalPort of an in-process
// hub). Translation only: frames in, frames out, state changes, stats.
//
// Lifetime: close() (or the environment's teardown, or garbage collection) closes the core port,
// which joins its I/O thread, and only then releases the thread-safe function. After that no
// callback runs.
#pragma once

#include <napi.h>

#include <memory>
#include <variant>
#include <vector>

#include "delivery.h"
#include "envelope.h"
#include "port.h"

namespace switchboard::addon {

struct StateChange {
  PortState state;
  Status why;
};

// The port's outbound buffer fell to the mark JavaScript gave notifyDrain(): onState('drain').
struct Drained {};

// Turns batches of envelopes and state changes into calls of onFrames(Uint8Array) and
// onState(...). A batch stays the vector the port handed over: queueing it moves no envelope.
struct PortSink {
  using Item = std::variant<std::vector<Envelope>, StateChange, Drained>;
  Napi::FunctionReference on_frames;
  Napi::FunctionReference on_state;
  static bool deliver(Napi::Env env, Delivery<PortSink>& delivery, std::vector<Item>& items,
                      std::size_t& done);
  static std::size_t cost(const Item& item);
};

class PortHandle : public Napi::ObjectWrap<PortHandle> {
 public:
  static Napi::Function define(Napi::Env env);
  // Wraps a started port whose callbacks push into `delivery`; undefined (the port closed and
  // the delivery released) where no object can be made, as in an environment being torn down.
  static Napi::Value wrap(Napi::Env env, std::unique_ptr<Port> port, Delivery<PortSink>* delivery);
  // Callbacks for a core port that feed `delivery` (set before the port starts).
  static PortCallbacks callbacks_for(Delivery<PortSink>* delivery);
  static Delivery<PortSink>* make_delivery(Napi::Env env, const Napi::Function& on_frames,
                                           const Napi::Function& on_state);

  explicit PortHandle(const Napi::CallbackInfo& info);
  ~PortHandle() override;

 private:
  Napi::Value submit(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value peer_id(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value outbound(const Napi::CallbackInfo& info);
  Napi::Value notify_drain(const Napi::CallbackInfo& info);
  Napi::Value ref(const Napi::CallbackInfo& info);
  Napi::Value unref(const Napi::CallbackInfo& info);
  void shutdown();
  static void on_env_teardown(void* self);

  napi_env env_ = nullptr;
  std::unique_ptr<Port> port_;
  Delivery<PortSink>* delivery_ = nullptr;
  bool hooked_ = false;
};

}  // namespace switchboard::addon
