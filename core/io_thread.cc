#include "io_thread.h"

namespace switchboard {

void IoThread::start() {
  if (thread_.joinable()) return;
  guard_.emplace(io_.get_executor());
  thread_ = std::thread([this] {
    id_.store(std::this_thread::get_id());
    io_.run();
  });
}

void IoThread::stop() {
  if (!thread_.joinable()) return;
  guard_.reset();
  thread_.join();
  id_.store(std::thread::id{});
}

}  // namespace switchboard
