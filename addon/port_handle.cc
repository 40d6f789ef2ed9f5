#include "port_handle.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "block_pool.h"
#include "bytes.h"
#include "errors.h"
#include "frame.h"
#include "instance.h"

namespace switchboard::addon {

// --- JavaScript-bound delivery -----------------------------------------------------------------

namespace {

// SWITCHBOARD_EXTERNAL_BUFFERS=0 makes this process copy every frame, as it must where the
// runtime refuses external buffers (Electron's V8 memory cage): the tests use it to run the
// fallback under plain Node.js, and a user can use it to rule the hand-over out.
bool external_buffers_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("SWITCHBOARD_EXTERNAL_BUFFERS");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return allowed;
}

using Batch = std::vector<Envelope>;

// A frame that arrived in a buffer of its own (frame.h: from kPooledFrame on) and that nothing
// else holds any more can become a JavaScript Buffer as it is. Nothing else can take a new
// reference to it meanwhile (that needs one of ours), so a count that matches only this
// envelope's own references is final: JavaScript gets the bytes to itself, and its writes to them
// reach no one else. Frames shared with another consumer (a hub's fan-out) are copied.
bool can_hand_over(const Envelope& e) {
  const Slice& f = e.frame;
  if (f.size < kPooledFrame || !f.owner) return false;
  if (f.data != f.owner->data() || f.size != f.owner->size()) return false;
  long ours = 1 + (e.payload.owner == f.owner ? 1 : 0);
  if (f.owner.use_count() != ours) return false;
  // Pairs with the release of the last other owner's reference (another thread may have read the
  // bytes just before dropping it): JavaScript's writes come after those reads.
  std::atomic_thread_fence(std::memory_order_acquire);
  return true;
}

void release_frame(napi_env /*env*/, void* /*data*/, void* hint) {
  std::unique_ptr<SharedBuffer> reclaim(static_cast<SharedBuffer*>(hint));
}

// The frame's bytes as a JavaScript Buffer: its own memory where the runtime allows external
// buffers, else a copy. The envelope gives up its bytes either way.
napi_value hand_over(napi_env env, Envelope& e) {
  auto holder = std::make_unique<SharedBuffer>(std::move(e.frame.owner));
  e.frame = Slice();
  e.payload = Slice();
  const Buffer& bytes = **holder;
  napi_value buffer = nullptr;
  // The Buffer object was created by us and is never read as const again: JavaScript owns it
  // now, so handing out write access is sound.
  auto* data = const_cast<std::uint8_t*>(bytes.data());
  // With SWITCHBOARD_EXTERNAL_BUFFERS=0 the refusal is simulated: the same path as Electron's.
  napi_status status = external_buffers_allowed()
                           ? napi_create_external_buffer(env, bytes.size(), data, release_frame,
                                                         holder.get(), &buffer)
                           : napi_no_external_buffers_allowed;
  if (status == napi_ok) {
    (void)holder.release();  // released by release_frame when JavaScript drops the Buffer
    return buffer;
  }
  // napi_no_external_buffers_allowed (Electron's memory cage) or any other failure: a copy.
  std::uint8_t* out = nullptr;
  napi_value copy = raw::bytes(env, bytes.size(), out);
  if (copy != nullptr) std::memcpy(out, bytes.data(), bytes.size());
  return copy;
}

// Where delivery has got to in a run of batches: item `item`, envelope `at`.
struct Cursor {
  std::size_t item;
  std::size_t at;
};

// Drops what was delivered of a batch that JavaScript left half-way (a listener threw), so that
// the retry starts with the first envelope not yet delivered.
void trim_delivered(std::vector<PortSink::Item>& items, Cursor c, std::size_t& done) {
  done = c.item;
  if (c.item < items.size() && c.at > 0) {
    Batch& batch = std::get<Batch>(items[c.item]);
    batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(c.at));
  }
}

}  // namespace

bool PortSink::deliver(Napi::Env env, Delivery<PortSink>& delivery, std::vector<Item>& items,
                       std::size_t& done) {
  PortSink& sink = delivery.sink();
  while (done < items.size()) {
    if (std::holds_alternative<Drained>(items[done])) {
      raw::Called called =
          raw::call(env, sink.on_state,
                    {raw::string(env, "drain"), raw::string(env, ""), raw::string(env, "")});
      if (called == raw::Called::not_run) return false;
      ++done;
      if (called == raw::Called::threw) return false;
      continue;
    }
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
    std::size_t end = done;
    while (end < items.size() && std::holds_alternative<Batch>(items[end])) ++end;
    // A run of batches reaches JavaScript in order as buffers of whole frames: the frames between
    // two hand-overs are copied into one buffer (one copy each, as they came off the wire, see
    // Envelope::frame); a frame handed over goes in a call of its own, without a copy.
    Cursor from{done, 0};
    while (from.item < end) {
      Cursor to = from;
      std::size_t bound = 0;
      while (to.item < end) {
        const Batch& batch = std::get<Batch>(items[to.item]);
        while (to.at < batch.size() && !can_hand_over(batch[to.at])) {
          bound += frame_size_bound(batch[to.at]);
          ++to.at;
        }
        if (to.at < batch.size()) break;
        ++to.item;
        to.at = 0;
      }
      if (bound == 0) {
        from = to;  // nothing to copy (or only empty batches) before the next hand-over
      } else {
        std::uint8_t* out = nullptr;
        napi_value whole = raw::bytes(env, bound, out);
        if (whole == nullptr) {
          trim_delivered(items, from, done);
          return false;
        }
        std::size_t used = 0;
        for (Cursor c = from; c.item < to.item || (c.item == to.item && c.at < to.at);) {
          const Batch& batch = std::get<Batch>(items[c.item]);
          if (c.at < batch.size()) used += encode_frame_into(batch[c.at++], out + used);
          if (c.at >= batch.size()) {
            ++c.item;
            c.at = 0;
          }
        }
        // A view of exactly the bytes written (the bound is an upper limit).
        napi_value frames = whole;
        if (used != bound) {
          napi_value buffer = nullptr;
          if (napi_get_typedarray_info(env, whole, nullptr, nullptr, nullptr, &buffer, nullptr) !=
                  napi_ok ||
              napi_create_typedarray(env, napi_uint8_array, used, buffer, 0, &frames) != napi_ok) {
            trim_delivered(items, from, done);
            return false;
          }
        }
        raw::Called called = raw::call(env, sink.on_frames, {frames});
        if (called == raw::Called::not_run) {
          trim_delivered(items, from, done);
          return false;
        }
        from = to;
        if (called == raw::Called::threw) {
          trim_delivered(items, from, done);
          return false;
        }
      }
      if (from.item >= end) break;
      // `from` is at a frame to hand over.
      napi_value frame = hand_over(env, std::get<Batch>(items[from.item])[from.at]);
      raw::Called called =
          frame == nullptr ? raw::Called::not_run : raw::call(env, sink.on_frames, {frame});
      // Its bytes are gone from the envelope whatever happened: count it as delivered.
      ++from.at;
      if (from.at >= std::get<Batch>(items[from.item]).size()) {
        ++from.item;
        from.at = 0;
      }
      if (called != raw::Called::ok) {
        trim_delivered(items, from, done);
        return false;
      }
    }
    done = end;
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
  cb.backlog_bytes = [delivery] { return delivery->queued_bytes(); };
  cb.consumed_bytes = [delivery] { return delivery->taken_bytes(); };
  cb.on_drain = [delivery] { delivery->push(Drained{}); };
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
                         InstanceMethod<&PortHandle::outbound>("outbound"),
                         InstanceMethod<&PortHandle::notify_drain>("notifyDrain"),
                         InstanceMethod<&PortHandle::ref>("ref"),
                         InstanceMethod<&PortHandle::unref>("unref"),
                     });
}

PortHandle::PortHandle(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<PortHandle>(info), env_(info.Env()) {}

PortHandle::~PortHandle() {
  shutdown();
}

Napi::Value PortHandle::wrap(Napi::Env env, std::unique_ptr<Port> port,
                             Delivery<PortSink>* delivery) {
  Napi::Object obj = Instance::get(env).port_class.New({});
  PortHandle* self = obj.IsEmpty() ? nullptr : PortHandle::Unwrap(obj);
  if (self == nullptr) {
    // No object: the environment is being torn down (or an exception is pending). Nothing can
    // use the port, so it ends here, before any callback could reach JavaScript.
    port->close();
    delivery->release();
    return env.Undefined();
  }
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
    // buffer may be reused or moved by the garbage collector. A bulk batch is copied into a
    // recycled block (core/block_pool.h): fresh pages cost more than the copy itself.
    auto owner = std::make_shared<Buffer>();
    if (size >= BlockPool::kMinBlock) owner->reserve_pooled(size, size + size / 4);
    owner->append(data, size);
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
    if (Status s = port_->submit(std::move(batch)); !s.ok()) {
      throw_status(env, s);
      return env.Undefined();
    }
    // What the port holds now, for emit()'s answer (flow control).
    return Napi::Number::New(env, static_cast<double>(port_->outbound_bytes()));
  });
}

Napi::Value PortHandle::outbound(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), port_ ? static_cast<double>(port_->outbound_bytes()) : 0.0);
}

Napi::Value PortHandle::notify_drain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    throw_error(env, "E_INVALID_ARGUMENT", "notifyDrain() takes a byte count");
    return env.Undefined();
  }
  if (port_)
    port_->notify_drain(static_cast<std::size_t>(info[0].As<Napi::Number>().DoubleValue()));
  return env.Undefined();
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
