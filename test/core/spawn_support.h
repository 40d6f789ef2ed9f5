// Helpers for the fault tests that run a peer or a hub as a process of its own: spawning one of
// the helper programs (bus_peer, hub_peer), waiting for the bytes it writes on its pipe, killing
// it, and counting this process's open file descriptors.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.h"

extern char** environ;

namespace switchboard::testing {

// Open file descriptors of this process.
inline std::size_t fd_count() {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n - 1;  // the directory iterator's own descriptor
}

// A spawned helper program. It inherits the write end of a pipe, whose number is substituted
// for the argument "{fd}"; the test reads progress bytes from the other end. Destroying it kills
// and reaps the process.
class Spawned {
 public:
  Spawned(const char* program, std::vector<std::string> args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    read_fd_ = fds[0];
    // The child must inherit the write end: a copy without close-on-exec, closed here after
    // the spawn.
    int child_fd = ::fcntl(fds[1], F_DUPFD, 3);
    ::close(fds[1]);
    std::vector<std::string> argv_strings;
    argv_strings.emplace_back(program);
    for (auto& a : args) argv_strings.push_back(a == "{fd}" ? std::to_string(child_fd) : a);
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, program, nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    ::close(child_fd);
  }
  ~Spawned() {
    kill(SIGKILL);
    wait();
    if (read_fd_ >= 0) ::close(read_fd_);
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;

  bool started() const { return pid_ > 0 && read_fd_ >= 0; }
  pid_t pid() const { return pid_; }

  // Reads the next progress byte; 0 when the child exited or nothing came before the deadline.
  char next(std::chrono::milliseconds deadline = std::chrono::milliseconds(10000)) {
    pollfd p{read_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline.count())) != 1) return 0;
    char c = 0;
    return ::read(read_fd_, &c, 1) == 1 ? c : 0;
  }
  bool kill(int sig) { return pid_ > 0 && !reaped_ && ::kill(pid_, sig) == 0; }
  // Reaps the child and returns its wait status (-1 if there was nothing to reap).
  int wait() {
    if (pid_ <= 0 || reaped_) return status_;
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) status_ = status;
    reaped_ = true;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

}  // namespace switchboard::testing
