// The dedicated I/O thread: one asio::io_context run by one std::thread.
//
// Contract:
// - start() and stop() are called by the owner from any thread except the I/O thread itself.
// - stop() releases the work guard and joins: the owner must first have closed (or posted the
//   closing of) everything that keeps the context busy, so run() drains and returns. Every
//   handler still queued runs before the join returns; none runs after.
// - The destructor calls stop().
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <optional>
#include <string>
#include <thread>

namespace switchboard {

class IoThread {
 public:
  IoThread() = default;
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;
  ~IoThread() { stop(); }

  asio::io_context& context() { return io_; }
  void start();
  void stop();
  bool running() const { return thread_.joinable(); }
  // True when called on this I/O thread.
  bool in_thread() const { return std::this_thread::get_id() == id_.load(); }

 private:
  asio::io_context io_{1};  // concurrency hint 1: a single thread runs it, so asio skips locks
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
  std::atomic<std::thread::id> id_{};
};

}  // namespace switchboard
