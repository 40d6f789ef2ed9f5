#include "port_handle.h"

#include <cstring>
#include <string>

#include "bytes.h"
#include "errors.h"
#include "frame.h"
#include "instance.h"

namespace switchboard::addon {

// --- JavaScript-bound delivery -----------------------------------------------------------------

bool PortSink::deliver(Napi::Env env, Delivery<PortSink>& delivery, std::vector<Item>& items,
                       std::size_t& done) {
  PortSink& sink = delivery.sink();
  while (done < items.size()) {
    if (auto* change = std::get_if<StateChange>(&items[done])) {
      const std::string code =
          change->why.ok() ? std::string() : std::string(wire_name(change->why.code()));
      raw::Called called =
          raw::call(env, sink.on_state,
                    {raw::string(env, state_name(change->state)), raw::string(env, code),
                     raw::string(env, change->why.message())});
      if (called == raw::Called::not_run) return false;
      ++done;
      if (called == raw::Called::threw) return false;
      continue;
    }
    // A run of batches becomes one buffer of whole frames: one copy of each frame (a frame
    // that came off the wire is copied as it is, see Envelope::frame).
    std::size_t end = done;
    std::size_t bound = 0;
    while (end < items.size()) {
      auto* batch = std::get_if<std::vector<Envelope>>(&items[end]);
      if (batch == nullptr) break;
      for (const Envelope& e : *batch) bound += frame_size_bound(e);
      ++end;
    }
    std::uint8_t* out = nullptr;
    napi_value whole = raw::bytes(env, bound, out);
    if (whole == nullptr) return false;
    std::size_t used = 0;
    for (std::size_t i = done; i < end; ++i) {
      for (const Envelope& e : std::get<std::vector<Envelope>>(items[i])) {
        used += encode_frame_into(e, out + used);
      }
    }
    // A view of exactly the bytes written (the bound is an upper limit).
    napi_value frames = whole;
    if (used != bound) {
      napi_value buffer = nullptr;
      if (napi_get_typedarray_info(env, whole, nullptr, nullptr, nullptr, &buffer, nullptr) !=
              napi_ok ||
          napi_create_typedarray(env, napi_uint8_array, used, buffer, 0, &frames) != napi_ok) {
        return false;
      }
    }
    raw::Called called = raw::call(env, sink.on_frames, {frames});
    if (called == raw::Called::not_run) return false;
    done = end;
    if (called == raw::Called::threw) return false;
  }
  return true;
}

std::size_t PortSink::cost(const Item& item) {
  const auto* batch = std::get_if<std::vector<Envelope>>(&item);
  if (batch == nullptr) return 0;
  std::size_t bytes = 0;
  for (const Envelope& e : *batch) bytes += frame_size_bound(e);
  return bytes;
}

Delivery<PortSink>* PortHandle::make_delivery(Napi::Env env, const Napi::Function& on_frames,
                                              const Napi::Function& on_state) {
  PortSink sink;
  sink.on_frames = Napi::Persistent(on_frames);
  sink.on_state = Napi::Persistent(on_state);
  return Delivery<PortSink>::create(env, std::move(sink), "switchboard:port");
}

PortCallbacks PortHandle::callbacks_for(Delivery<PortSink>* delivery) {
  PortCallbacks cb;
  cb.on_batch = [delivery](std::vector<Envelope>& batch) { delivery->push(std::move(batch)); };
  cb.backlogged = [delivery] { return delivery->backlogged(); };
  cb.on_state = [delivery](PortState state, const Status& why) {
    delivery->push(StateChange{state, why});
  };
  return cb;
}

// --- The handle ------------------------------------------------------------------------------

Napi::Function PortHandle::define(Napi::Env env) {
  return DefineClass(env, "NativePort",
                     {
                         InstanceMethod<&PortHandle::submit>("submit"),
                         InstanceMethod<&PortHandle::close>("close"),
                         InstanceMethod<&PortHandle::peer_id>("peerId"),
                         InstanceMethod<&PortHandle::stats>("stats"),
                         InstanceMethod<&PortHandle::ref>("ref"),
                         InstanceMethod<&PortHandle::unref>("unref"),
                     });
}

PortHandle::PortHandle(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<PortHandle>(info), env_(info.Env()) {}

PortHandle::~PortHandle() {
  shutdown();
}

Napi::Object PortHandle::wrap(Napi::Env env, std::unique_ptr<Port> port,
                              Delivery<PortSink>* delivery) {
  Napi::Object obj = Instance::get(env).port_class.New({});
  PortHandle* self = PortHandle::Unwrap(obj);
  self->port_ = std::move(port);
  self->delivery_ = delivery;
  // Runs in the delivery's JavaScript call, which never overlaps close() (same thread), and not
  // at all once the delivery is released: the port outlives every call.
  delivery->set_on_caught_up([port = self->port_.get()] { port->resume_reading(); });
  // Registered after the thread-safe function, so it runs before the function's own teardown:
  // the I/O thread is joined while the delivery still exists.
  napi_add_env_cleanup_hook(env, &PortHandle::on_env_teardown, self);
  self->hooked_ = true;
  return obj;
}

void PortHandle::on_env_teardown(void* self) {
  auto* handle = static_cast<PortHandle*>(self);
  handle->hooked_ = false;  // hooks are removed by the runtime as they run
  handle->shutdown();
}

void PortHandle::shutdown() {
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, &PortHandle::on_env_teardown, this);
    hooked_ = false;
  }
  if (port_) {
    port_->close();  // joins the I/O thread: nothing pushes after this
    port_.reset();
  }
  if (delivery_) {
    delivery_->release();  // the last call on the thread-safe function
    delivery_ = nullptr;
  }
}

Napi::Value PortHandle::submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!port_) {
      throw_error(env, "E_CLOSED", "this bus is closed");
      return env.Undefined();
    }
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      throw_error(env, "E_INVALID_ARGUMENT", "submit() takes a Uint8Array of frames");
      return env.Undefined();
    }
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    const auto* data =
        static_cast<const std::uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    std::size_t size = array.ByteLength();
    // One copy per batch: the core keeps the bytes after this call returns, and the JavaScript
    // buffer may be reused or moved by the garbage collector.
    auto owner = std::make_shared<Buffer>(data, size);
    // Count the frames first: growing the vector would move every envelope again.
    std::size_t count = 0;
    for (std::size_t at = 0; size - at >= kFrameHeaderSize;) {
      at += kFrameHeaderSize + get_frame_header(data + at);
      ++count;
      if (at > size) break;
    }
    std::vector<Envelope> batch;
    batch.reserve(count);
    std::size_t at = 0;
    while (at < size) {
      if (size - at < kFrameHeaderSize) {
        throw_error(env, "E_PROTOCOL", "submit(): truncated frame header");
        return env.Undefined();
      }
      std::size_t length = get_frame_header(owner->data() + at);
      at += kFrameHeaderSize;
      if (length > size - at) {
        throw_error(env, "E_PROTOCOL", "submit(): frame longer than the batch");
        return env.Undefined();
      }
      Envelope envelope;
      // Kept as a frame (prefix included): the client sends these bytes on as they are.
      Status s = decode_frame(
          Slice(owner, owner->data() + at - kFrameHeaderSize, kFrameHeaderSize + length), envelope);
      if (!s.ok()) {
        throw_status(env, s);
        return env.Undefined();
      }
      batch.push_back(std::move(envelope));
      at += length;
    }
    if (Status s = port_->submit(std::move(batch)); !s.ok()) throw_status(env, s);
    return env.Undefined();
  });
}

Napi::Value PortHandle::close(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    shutdown();
    return info.Env().Undefined();
  });
}

Napi::Value PortHandle::peer_id(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), port_ ? static_cast<double>(port_->peer_id()) : 0.0);
}

Napi::Value PortHandle::stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PortStats s = port_ ? port_->stats() : PortStats{};
  if (!port_) s.state = PortState::closed;
  Napi::Object out = Napi::Object::New(env);
  out.Set("state", std::string(state_name(s.state)));
  out.Set("connects", static_cast<double>(s.connects));
  out.Set("attempts", static_cast<double>(s.attempts));
  out.Set("offlineQueued", static_cast<double>(s.offline_queued));
  out.Set("inFlight", static_cast<double>(s.in_flight));
  out.Set("framesIn", static_cast<double>(s.frames_in));
  out.Set("framesOut", static_cast<double>(s.frames_out));
  out.Set("writevCalls", static_cast<double>(s.writev_calls));
  return out;
}

Napi::Value PortHandle::ref(const Napi::CallbackInfo& info) {
  if (delivery_) delivery_->ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value PortHandle::unref(const Napi::CallbackInfo& info) {
  if (delivery_) delivery_->unref(info.Env());
  return info.Env().Undefined();
}

}  // namespace switchboard::addon
