#include "hub_handle.h"

#include <mutex>
#include <string>
#include <vector>

#include "errors.h"
#include "instance.h"
#include "options.h"
#include "port_handle.h"

namespace switchboard::addon {
namespace {

// Process-wide: the shared object is loaded once per process, whatever the number of threads.
struct LocalHub {
  const void* owner;
  std::string endpoint;
  std::string token;
  std::string name;
};
std::mutex g_local_hubs_mutex;
std::vector<LocalHub> g_local_hubs;

void register_local_hub(const void* owner, const Hub& hub, const std::string& name) {
  std::lock_guard lock(g_local_hubs_mutex);
  g_local_hubs.push_back({owner, hub.endpoint(), hub.token(), name});
}

void unregister_local_hub(const void* owner) {
  std::lock_guard lock(g_local_hubs_mutex);
  std::erase_if(g_local_hubs, [owner](const LocalHub& h) { return h.owner == owner; });
}

}  // namespace

Napi::Value HubHandle::local_hubs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard lock(g_local_hubs_mutex);
  Napi::Array out = Napi::Array::New(env, g_local_hubs.size());
  for (std::size_t i = 0; i < g_local_hubs.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("endpoint", g_local_hubs[i].endpoint);
    o.Set("token", g_local_hubs[i].token);
    o.Set("name", g_local_hubs[i].name);
    out.Set(static_cast<std::uint32_t>(i), o);
  }
  return out;
}

bool PeerSink::deliver(Napi::Env env, Delivery<PeerSink>& delivery, std::vector<Item>& items,
                       std::size_t& done) {
  PeerSink& sink = delivery.sink();
  while (done < items.size()) {
    const PeerEvent& ev = items[done];
    if (!sink.on_peer.IsEmpty()) {
      const char* type = ev.type == PeerEvent::Type::joined ? "joined"
                         : ev.type == PeerEvent::Type::left ? "left"
                                                            : "rejected";
      napi_value obj = raw::object(
          env, {{"type", raw::string(env, type)},
                {"id", raw::number(env, static_cast<double>(ev.id))},
                {"role", raw::string(env, ev.role)},
                {"name", raw::string(env, ev.name)},
                {"pid", raw::number(env, static_cast<double>(ev.pid))},
                {"code", raw::string(env, ev.reason.ok() ? std::string_view()
                                                         : wire_name(ev.reason.code()))},
                {"message", raw::string(env, ev.reason.message())}});
      raw::Called called =
          obj == nullptr ? raw::Called::not_run : raw::call(env, sink.on_peer, {obj});
      if (called == raw::Called::not_run) return false;
      if (called == raw::Called::threw) {
        ++done;
        return false;
      }
    }
    ++done;
  }
  return true;
}

Napi::Function HubHandle::define(Napi::Env env) {
  return DefineClass(env, "NativeHub",
                     {
                         InstanceMethod<&HubHandle::connect_local>("connectLocal"),
                         InstanceMethod<&HubHandle::accept_peers>("acceptPeers"),
                         InstanceMethod<&HubHandle::stats>("stats"),
                         InstanceMethod<&HubHandle::close>("close"),
                         InstanceMethod<&HubHandle::ref>("ref"),
                         InstanceMethod<&HubHandle::unref>("unref"),
                     });
}

HubHandle::HubHandle(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<HubHandle>(info), env_(info.Env()) {}

HubHandle::~HubHandle() {
  shutdown();
}

Napi::Value HubHandle::start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw_error(env, "E_INVALID_ARGUMENT", "startHub(options, onPeer) needs an options object");
      return env.Undefined();
    }
    HubOptions opt;
    if (Status s = read_hub_options(info[0].As<Napi::Object>(), opt); !s.ok()) {
      throw_status(env, s);
      return env.Undefined();
    }
    Napi::Function on_peer;
    if (info.Length() > 1 && info[1].IsFunction()) on_peer = info[1].As<Napi::Function>();
    PeerSink sink;
    if (!on_peer.IsEmpty()) sink.on_peer = Napi::Persistent(on_peer);
    Delivery<PeerSink>* peers = Delivery<PeerSink>::create(env, std::move(sink), "switchboard:hub");
    if (peers == nullptr) {
      throw_error(env, "E_CLOSED", "startHub(): this JavaScript environment is shutting down");
      return env.Undefined();
    }
    opt.on_peer = [peers](const PeerEvent& ev) { peers->push(ev); };
    std::string name = opt.name;
    auto hub = std::make_unique<Hub>(std::move(opt));
    if (Status s = hub->start(); !s.ok()) {
      peers->release();
      throw_status(env, s);
      return env.Undefined();
    }
    Napi::Object obj = Instance::get(env).hub_class.New({});
    HubHandle* self = obj.IsEmpty() ? nullptr : HubHandle::Unwrap(obj);
    napi_value endpoint = raw::string(env, hub->endpoint());
    napi_value token = raw::string(env, hub->token());
    if (self == nullptr || endpoint == nullptr || token == nullptr ||
        napi_set_named_property(env, obj, "endpoint", endpoint) != napi_ok ||
        napi_set_named_property(env, obj, "token", token) != napi_ok) {
      // The environment is being torn down (or an exception is pending): nobody can use the hub.
      hub->close();
      peers->release();
      return env.Undefined();
    }
    register_local_hub(self, *hub, name);
    self->hub_ = std::move(hub);
    self->peers_ = peers;
    napi_add_env_cleanup_hook(env, &HubHandle::on_env_teardown, self);
    self->hooked_ = true;
    return obj;
  });
}

void HubHandle::on_env_teardown(void* self) {
  auto* handle = static_cast<HubHandle*>(self);
  handle->hooked_ = false;
  handle->shutdown();
}

void HubHandle::shutdown() {
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, &HubHandle::on_env_teardown, this);
    hooked_ = false;
  }
  if (hub_) {
    unregister_local_hub(this);
    hub_->close();  // GOAWAY to every peer, joins the I/O thread
    hub_.reset();
  }
  if (peers_) {
    peers_->release();
    peers_ = nullptr;
  }
}

Napi::Value HubHandle::connect_local(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!hub_) {
      throw_error(env, "E_CLOSED", "the hub is closed");
      return env.Undefined();
    }
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsFunction() ||
        !info[3].IsFunction()) {
      throw_error(
          env, "E_INVALID_ARGUMENT",
          "connectLocal(role, name, onFrames, onState) takes two strings and two functions");
      return env.Undefined();
    }
    LocalPeerInfo peer;
    peer.role = info[0].As<Napi::String>().Utf8Value();
    peer.name = info[1].As<Napi::String>().Utf8Value();
    // A fifth argument, the grants, makes it an untrusted peer (a page attached by main).
    if (info.Length() > 4 && info[4].IsObject()) {
      Grants grants;
      if (Status s = read_grants(info[4].As<Napi::Object>(), grants); !s.ok()) {
        throw_status(env, s);
        return env.Undefined();
      }
      peer.grants = std::make_shared<const Grants>(std::move(grants));
    }
    // A sixth, { origin, window }: what other peers are told of a page.
    if (info.Length() > 5 && info[5].IsObject()) {
      Napi::Object page = info[5].As<Napi::Object>();
      if (Napi::Value o = page.Get("origin"); o.IsString())
        peer.origin = o.As<Napi::String>().Utf8Value();
      if (Napi::Value w = page.Get("window");
          w.IsNumber() && w.As<Napi::Number>().DoubleValue() > 0) {
        peer.window = static_cast<std::uint64_t>(w.As<Napi::Number>().DoubleValue());
      }
    }
    Delivery<PortSink>* delivery =
        PortHandle::make_delivery(env, info[2].As<Napi::Function>(), info[3].As<Napi::Function>());
    if (delivery == nullptr) {
      throw_error(env, "E_CLOSED", "connectLocal(): this JavaScript environment is shutting down");
      return env.Undefined();
    }
    std::unique_ptr<Port> port = hub_->connect_local(peer, PortHandle::callbacks_for(delivery));
    if (!port) {
      delivery->release();
      throw_error(env, "E_CLOSED", "the hub is closed");
      return env.Undefined();
    }
    return PortHandle::wrap(env, std::move(port), delivery);
  });
}

Napi::Value HubHandle::accept_peers(const Napi::CallbackInfo& info) {
  if (hub_) hub_->accept_peers();  // posts to the hub's I/O thread; never throws
  return info.Env().Undefined();
}

Napi::Value HubHandle::stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HubStats s = hub_ ? hub_->stats() : HubStats{};
  Napi::Object out = Napi::Object::New(env);
  out.Set("peers", static_cast<double>(s.peers));
  out.Set("handshaking", static_cast<double>(s.handshaking));
  out.Set("subscriptions", static_cast<double>(s.subscriptions));
  out.Set("handlers", static_cast<double>(s.handlers));
  out.Set("pendingInvokes", static_cast<double>(s.pending_invokes));
  out.Set("eventsRouted", static_cast<double>(s.events_routed));
  out.Set("eventsDropped", static_cast<double>(s.events_dropped));
  out.Set("invokesRouted", static_cast<double>(s.invokes_routed));
  out.Set("paused", static_cast<double>(s.paused));
  out.Set("parkedBytes", static_cast<double>(s.parked_bytes));
  out.Set("stalled", static_cast<double>(s.stalled));
  out.Set("pauses", static_cast<double>(s.pauses));
  out.Set("stalls", static_cast<double>(s.stalls));
  out.Set("queuedBytes", static_cast<double>(s.queued_bytes));
  out.Set("peakQueuedBytes", static_cast<double>(s.peak_queued_bytes));
  out.Set("framesIn", static_cast<double>(s.frames_in));
  out.Set("framesOut", static_cast<double>(s.frames_out));
  out.Set("writevCalls", static_cast<double>(s.writev_calls));
  out.Set("rejected", static_cast<double>(s.rejected));
  return out;
}

Napi::Value HubHandle::close(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    shutdown();
    return info.Env().Undefined();
  });
}

Napi::Value HubHandle::ref(const Napi::CallbackInfo& info) {
  if (peers_) peers_->ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value HubHandle::unref(const Napi::CallbackInfo& info) {
  if (peers_) peers_->unref(info.Env());
  return info.Env().Undefined();
}

}  // namespace switchboard::addon
