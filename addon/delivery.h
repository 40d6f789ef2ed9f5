// Hands what a core I/O thread produces to JavaScript with one thread-safe call per batch.
//
// Contract:
// - push() is called on the I/O thread. Items accumulate under a mutex; only the push that finds
//   the queue idle makes a thread-safe call, so one wake-up of the JavaScript thread drains
//   everything that arrived meanwhile (as @parcel/watcher and uv_async_send do).
// - The thread-safe function owns the Delivery: its finalizer deletes it on the JavaScript
//   thread. `call_js` frees nothing when `env` is null (the environment is going away; the
//   finalizer still runs).
// - release() is the owner's last call, made after the producer (the port's I/O thread) has been
//   joined, so no push() can follow it.
// - It starts unref'd: a quiet bus never keeps the process alive. ref()/unref() come from
//   JavaScript (lib/ refs while an invoke or ready() is pending).
// - A JavaScript callback that throws leaves the rest of the batch queued for the next call;
//   the exception is reported by Node.js as uncaught (lib/ catches listener errors itself).
// - After release(), calls already queued drop their items without entering JavaScript: the
//   owner has closed, and at environment teardown JavaScript can no longer run at all.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

namespace switchboard::addon {

// The delivery path runs where JavaScript may no longer be able to run (a worker being
// terminated, environment teardown). node-addon-api turns any failed call into a thrown
// exception, and a throw that cannot happen there is fatal; so this path uses raw Node-API calls
// that report failure, and a failure ends the delivery quietly.
namespace raw {

inline napi_value string(napi_env env, std::string_view s) {
  napi_value v = nullptr;
  return napi_create_string_utf8(env, s.data(), s.size(), &v) == napi_ok ? v : nullptr;
}

inline napi_value number(napi_env env, double d) {
  napi_value v = nullptr;
  return napi_create_double(env, d, &v) == napi_ok ? v : nullptr;
}

// A Buffer (a Uint8Array) of `size` fresh bytes; `data` receives its memory. Not zero-filled,
// unlike napi_create_arraybuffer: the caller overwrites every byte it hands out, and for bulk
// payloads the memset cost as much as the copy.
inline napi_value bytes(napi_env env, std::size_t size, std::uint8_t*& data) {
  napi_value array = nullptr;
  void* memory = nullptr;
  if (napi_create_buffer(env, size, &memory, &array) != napi_ok) return nullptr;
  data = static_cast<std::uint8_t*>(memory);
  return array;
}

// An object with the given string-keyed values; null if any step fails.
inline napi_value object(napi_env env,
                         std::initializer_list<std::pair<const char*, napi_value>> fields) {
  napi_value o = nullptr;
  if (napi_create_object(env, &o) != napi_ok) return nullptr;
  for (const auto& [key, value] : fields) {
    if (value == nullptr || napi_set_named_property(env, o, key, value) != napi_ok) return nullptr;
  }
  return o;
}

enum class Called { ok, threw, not_run };

// Calls `fn`. `threw`: it ran and threw (its exception stays pending for Node.js to report), so
// what it was given counts as delivered; `not_run`: JavaScript could not be entered.
inline Called call(napi_env env, const Napi::FunctionReference& fn,
                   std::initializer_list<napi_value> args) {
  if (fn.IsEmpty()) return Called::ok;
  for (napi_value a : args) {
    if (a == nullptr) return Called::not_run;
  }
  napi_value callee = nullptr;
  napi_value recv = nullptr;
  napi_value result = nullptr;
  if (napi_get_reference_value(env, fn, &callee) != napi_ok || callee == nullptr) {
    return Called::not_run;
  }
  if (napi_get_undefined(env, &recv) != napi_ok) return Called::not_run;
  napi_status status = napi_call_function(env, recv, callee, args.size(), args.begin(), &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return Called::threw;
  return status == napi_ok ? Called::ok : Called::not_run;
}

}  // namespace raw

// Sink decides how a run of items reaches JavaScript:
//   static bool deliver(Napi::Env, Delivery<Sink>&, std::vector<Item>& items, std::size_t& done);
// delivers items[done..] and advances `done`; returns false if a callback threw.
template <typename Sink>
class Delivery {
 public:
  using Item = typename Sink::Item;

  // Creates the delivery and its thread-safe function; the returned pointer stays valid until
  // release() (and, after that, until the finalizer runs on the JavaScript thread). Null if the
  // thread-safe function cannot be made (an environment being torn down): a push() into a
  // delivery without one would abort in Node.js's own checks.
  static Delivery* create(Napi::Env env, Sink sink, const char* name) {
    auto owned = std::make_unique<Delivery>(std::move(sink));
    Delivery* self = owned.get();
    self->tsfn_ = Tsfn::New(env, name, 0, 1, self, [](Napi::Env, void*, Delivery* ctx) {
      std::unique_ptr<Delivery> reclaim(ctx);  // finalizer: the JS thread, last of all
    });
    if (static_cast<napi_threadsafe_function>(self->tsfn_) == nullptr) return nullptr;
    (void)owned.release();  // now owned by the thread-safe function (see its finalizer)
    self->tsfn_.Unref(env);
    return self;
  }

  explicit Delivery(Sink sink) : sink_(std::move(sink)) {}

  // I/O thread.
  void push(Item item) {
    std::size_t cost = Sink::cost(item);
    bool call = false;
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
      queued_bytes_ += cost;
      if (queued_bytes_ > kBacklogBytes) backlogged_ = true;
      call = !scheduled_;
      scheduled_ = true;
    }
    if (call) (void)tsfn_.NonBlockingCall(nullptr);  // napi_closing at teardown: dropped
  }

  // I/O thread: true while more than kBacklogBytes wait for JavaScript. The producer then stops
  // reading; `on_caught_up` (set by the owner) runs on the JavaScript thread when JavaScript
  // takes the backlog, so that it can resume.
  bool backlogged() {
    std::lock_guard lock(mutex_);
    return queued_bytes_ > kBacklogBytes;
  }
  void set_on_caught_up(std::function<void()> fn) { on_caught_up_ = std::move(fn); }
  // Any thread: bytes waiting for JavaScript now, and taken by it so far (flow control: the hub
  // counts its own process's JavaScript as a receiver like any other).
  std::size_t queued_bytes() {
    std::lock_guard lock(mutex_);
    return queued_bytes_;
  }
  std::uint64_t taken_bytes() const { return taken_bytes_.load(std::memory_order_relaxed); }
  // JavaScript thread.
  void ref(Napi::Env env) { tsfn_.Ref(env); }
  void unref(Napi::Env env) { tsfn_.Unref(env); }
  void release() {
    if (released_) return;
    released_ = true;
    tsfn_.Release();
  }
  Sink& sink() { return sink_; }

 private:
  static void call_js(Napi::Env env, Napi::Function, Delivery* self, std::nullptr_t*) {
    if (env == nullptr || self == nullptr || self->released_) return;
    std::vector<Item> items;
    bool caught_up = false;
    {
      std::lock_guard lock(self->mutex_);
      items.swap(self->items_);
      self->scheduled_ = false;
      self->taken_bytes_.fetch_add(self->queued_bytes_, std::memory_order_relaxed);
      self->queued_bytes_ = 0;
      caught_up = std::exchange(self->backlogged_, false);
    }
    // Resume before delivering: the next batch is read while JavaScript handles this one, so at
    // most about two backlogs' worth are held at once.
    if (caught_up && self->on_caught_up_) self->on_caught_up_();
    // A raw scope: node-addon-api's HandleScope would abort if it cannot open one (see raw).
    napi_handle_scope scope = nullptr;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    std::size_t done = 0;
    bool delivered = Sink::deliver(env, *self, items, done);
    napi_close_handle_scope(env, scope);
    if (!delivered && done < items.size()) {
      // A callback threw: keep what was not delivered, ahead of anything newer.
      std::lock_guard lock(self->mutex_);
      items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(done));
      for (auto& item : self->items_) items.push_back(std::move(item));
      self->items_.swap(items);
      if (!self->scheduled_) {
        self->scheduled_ = true;
        (void)self->tsfn_.NonBlockingCall(nullptr);
      }
    }
  }

  using Tsfn = Napi::TypedThreadSafeFunction<Delivery, std::nullptr_t, &Delivery::call_js>;

  // Bytes queued for JavaScript above which the producer is asked to stop reading. Large enough
  // that one JavaScript call takes thousands of small events (amortising the call), small enough
  // to keep a slow consumer's memory flat.
  static constexpr std::size_t kBacklogBytes = 256u << 10;

  Sink sink_;
  Tsfn tsfn_;
  std::mutex mutex_;
  std::vector<Item> items_;
  std::size_t queued_bytes_ = 0;
  std::atomic<std::uint64_t> taken_bytes_{0};
  bool backlogged_ = false;
  std::function<void()> on_caught_up_;  // JavaScript thread
  bool scheduled_ = false;
  bool released_ = false;
};

}  // namespace switchboard::addon
