// The named-pipe transport's promises (core/pipe_transport.cc), Windows only: cross-compiled with
// mingw-w64 and run under Wine by test/platforms/wine.sh. The other suites of test/core use POSIX
// (fork, posix_spawn, signals, /proc); the hub and client over pipes are tested by
// test/platforms/bus-subset.mjs in node.exe processes.
// Everything runs on the test's thread: each test drives its io_context with run_for() until what
// it waits for has happened, or fails after a few seconds.
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

// After Asio (winsock2.h before windows.h).
#include <windows.h>
// After windows.h.
#include <aclapi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "transport.h"

namespace switchboard::testing {
namespace {

using namespace std::chrono_literals;

std::string pipe_name(const std::string& what) {
  static std::atomic<int> counter{0};
  return R"(\\.\pipe\switchboard-test-)" + what + "-" + std::to_string(::GetCurrentProcessId()) +
         "-" + std::to_string(counter++);
}

std::uint8_t pattern(std::size_t i) {
  return static_cast<std::uint8_t>((i * 131 + i / 251) & 0xff);
}

// A listener, and a client connected to it with the accepted end.
struct Pair {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<Listener> listener;
  std::unique_ptr<Stream> server, client;
  Status status;

  // Runs the context until done() or the limit; true if done.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) io.run_for(5ms);
    return done();
  }

  bool open(const std::string& name) {
    listener = listen_endpoint(io, name, status);
    if (!listener) return false;
    listener->accept([this](Status s, std::unique_ptr<Stream> stream) {
      if (!s.ok()) status = s;
      server = std::move(stream);
    });
    connect_endpoint(io, name, [this](Status s, std::unique_ptr<Stream> stream) {
      if (!s.ok()) status = s;
      client = std::move(stream);
    });
    return run_until([this] { return (server && client) || !status.ok(); }) && server && client;
  }

  ~Pair() {
    if (client) client->close();
    if (server) server->close();
    if (listener) listener->close();
    // Let cancelled operations complete before the context goes.
    io.run_for(50ms);
  }
};

// Writes `total` bytes of pattern() from `from` and reads them at `to`, both by the readiness
// contract (try_*, then wait_* on would_block).
struct Transfer {
  Transfer(Stream& f, Stream& t, std::size_t n) : from(f), to(t), total(n) {}
  Stream& from;
  Stream& to;
  std::size_t total;
  std::size_t written = 0, read = 0, mismatches = 0;
  std::vector<std::uint8_t> out, in = std::vector<std::uint8_t>(100'000);
  Status error;
  bool eof = false;

  void write() {
    while (written < total) {
      std::size_t n = std::min<std::size_t>(total - written, 300'000);
      out.resize(n);
      for (std::size_t i = 0; i < n; ++i) out[i] = pattern(written + i);
      IoVec v{out.data(), n};
      IoResult r = from.try_write({&v, 1});
      if (r.state == IoState::ok) {
        written += r.bytes;
      } else if (r.state == IoState::would_block) {
        from.wait_writable([this](std::error_code ec) {
          if (ec)
            error = Status(Errc::io_error, "wait_writable: " + ec.message());
          else
            write();
        });
        return;
      } else {
        error = r.error;
        return;
      }
    }
  }

  void read_some() {
    for (;;) {
      IoResult r = to.try_read(in);
      if (r.state == IoState::ok) {
        for (std::size_t i = 0; i < r.bytes; ++i) mismatches += in[i] != pattern(read + i);
        read += r.bytes;
      } else if (r.state == IoState::would_block) {
        to.wait_readable([this](std::error_code ec) {
          if (ec)
            error = Status(Errc::io_error, "wait_readable: " + ec.message());
          else
            read_some();
        });
        return;
      } else if (r.state == IoState::eof) {
        eof = true;
        return;
      } else {
        error = r.error;
        return;
      }
    }
  }
};

TEST(Pipe, AStreamCarriesBytesBothWaysInOrder) {
  Pair p;
  ASSERT_TRUE(p.open(pipe_name("bytes"))) << p.status.message();
  std::vector<std::pair<Stream*, Stream*>> directions{{p.client.get(), p.server.get()},
                                                      {p.server.get(), p.client.get()}};
  for (auto [from, to] : directions) {
    Transfer t{*from, *to, 8u << 20};
    t.write();
    t.read_some();
    ASSERT_TRUE(p.run_until([&] { return t.read == t.total || !t.error.ok(); }, 30s))
        << "read " << t.read << " of " << t.total;
    EXPECT_TRUE(t.error.ok()) << t.error.message();
    EXPECT_EQ(t.mismatches, 0u);
  }
}

TEST(Pipe, AWriterWhoseReaderStopsIsToldToWaitAndResumed) {
  Pair p;
  ASSERT_TRUE(p.open(pipe_name("stall"))) << p.status.message();
  std::vector<std::uint8_t> chunk(64 * 1024, 7);
  IoVec v{chunk.data(), chunk.size()};
  std::size_t accepted = 0;
  bool blocked = false;
  // Nobody reads: the writer must be told to wait within a bounded amount.
  while (accepted < (64u << 20)) {
    IoResult r = p.client->try_write({&v, 1});
    if (r.state == IoState::would_block) {
      // The write in flight may complete into the pipe's buffer: run, then try again.
      p.io.run_for(20ms);
      r = p.client->try_write({&v, 1});
      if (r.state == IoState::would_block) {
        blocked = true;
        break;
      }
    }
    ASSERT_EQ(r.state, IoState::ok) << r.error.message();
    accepted += r.bytes;
  }
  ASSERT_TRUE(blocked) << accepted << " bytes accepted with nobody reading";
  std::cout << "[ note ] " << accepted << " bytes accepted before the writer had to wait\n";
  bool writable = false;
  p.client->wait_writable([&](std::error_code ec) { writable = !ec; });
  p.io.run_for(100ms);
  EXPECT_FALSE(writable) << "writable although nobody read";
  // The reader drains: the writer is woken.
  std::vector<std::uint8_t> sink(1 << 20);
  std::size_t drained = 0;
  ASSERT_TRUE(p.run_until([&] {
    IoResult r = p.server->try_read(sink);
    if (r.state == IoState::ok) drained += r.bytes;
    return writable;
  })) << "drained "
      << drained << " bytes, the writer was not woken";
}

TEST(Pipe, ASecondListenerOnALiveNameIsRefusedAndTheFirstGoesOn) {
  Pair p;
  std::string name = pipe_name("second");
  ASSERT_TRUE(p.open(name)) << p.status.message();
  Status second;
  auto other = listen_endpoint(p.io, name, second);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(second.code(), Errc::endpoint_in_use) << second.message();
  EXPECT_NE(second.message().find(name), std::string::npos) << second.message();
  // The first still accepts.
  std::unique_ptr<Stream> accepted, connected;
  p.listener->accept([&](Status, std::unique_ptr<Stream> s) { accepted = std::move(s); });
  connect_endpoint(p.io, name,
                   [&](Status, std::unique_ptr<Stream> s) { connected = std::move(s); });
  EXPECT_TRUE(p.run_until([&] { return accepted && connected; }));
}

TEST(Pipe, EndpointsThatAreNotPipeNamesAreTypedErrors) {
  asio::io_context io;
  for (std::string bad : {std::string("/tmp/hub.sock"), std::string(R"(\\.\pipe\a\b)"),
                          std::string(R"(\\.\pipe\)"), R"(\\.\pipe\)" + std::string(260, 'x')}) {
    Status s;
    EXPECT_EQ(listen_endpoint(io, bad, s), nullptr) << bad;
    EXPECT_EQ(s.code(), Errc::invalid_argument) << bad << ": " << s.message();
    Status c;
    connect_endpoint(io, bad, [&](Status st, std::unique_ptr<Stream>) { c = st; });
    io.restart();
    io.run();
    EXPECT_EQ(c.code(), Errc::invalid_argument) << bad << ": " << c.message();
  }
}

TEST(Pipe, ConnectingToNoHubIsAnIoErrorThatNamesThePipe) {
  asio::io_context io;
  std::string name = pipe_name("nobody");
  Status c;
  bool called = false;
  connect_endpoint(io, name, [&](Status st, std::unique_ptr<Stream>) {
    called = true;
    c = st;
  });
  io.run();
  ASSERT_TRUE(called);
  EXPECT_EQ(c.code(), Errc::io_error);
  EXPECT_NE(c.message().find(name), std::string::npos) << c.message();
}

TEST(Pipe, TheAcceptedEndKnowsTheClientsProcessButNoUser) {
  Pair p;
  ASSERT_TRUE(p.open(pipe_name("pid"))) << p.status.message();
  PeerCredentials c = p.server->credentials();
  EXPECT_EQ(c.pid, ::GetCurrentProcessId());
  EXPECT_FALSE(c.known) << "no uid on Windows: the DACL admits this user only";
}

TEST(Pipe, EndOfStreamReachesTheOtherEnd) {
  Pair p;
  ASSERT_TRUE(p.open(pipe_name("eof"))) << p.status.message();
  Transfer t{*p.client, *p.server, 0};
  t.read_some();
  p.client->close();
  EXPECT_TRUE(p.run_until([&] { return t.eof || !t.error.ok(); }));
  EXPECT_TRUE(t.eof) << t.error.message();
  IoVec v{nullptr, 0};
  EXPECT_EQ(p.client->try_write({&v, 1}).state, IoState::error) << "a closed stream writes nothing";
}

TEST(Pipe, BytesWrittenJustBeforeCloseStillArrive) {
  Pair p;
  ASSERT_TRUE(p.open(pipe_name("linger"))) << p.status.message();
  Transfer t{*p.client, *p.server, 200'000};
  t.write();  // one write of 200 000 bytes, in flight
  p.client->close();
  t.read_some();
  EXPECT_TRUE(p.run_until([&] { return t.eof || !t.error.ok(); }));
  EXPECT_EQ(t.read, t.total);
  EXPECT_EQ(t.mismatches, 0u);
  EXPECT_TRUE(t.eof) << t.error.message();
}

TEST(Pipe, CloseRunsPendingWaitsOnceWithAnError) {
  Pair p;
  ASSERT_TRUE(p.open(pipe_name("waits"))) << p.status.message();
  int calls = 0;
  std::error_code got;
  p.server->wait_readable([&](std::error_code ec) {
    ++calls;
    got = ec;
  });
  p.server->close();
  p.run_until([&] { return calls > 0; });
  p.io.run_for(50ms);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(got) << "the wait ended without an error";
}

// The DACL: one entry, allowing this user's SID, protected from inheritance. Wine keeps a pipe's
// security descriptor only as far as it implements them; where it gives none back, the test
// says so and skips (it is not counted as passed).
TEST(Pipe, ThePipeAdmitsThisUserOnly) {
  asio::io_context io;
  std::string name = pipe_name("dacl");
  Status s;
  auto listener = listen_endpoint(io, name, s);
  ASSERT_NE(listener, nullptr) << s.message();
  std::wstring wide(name.begin(), name.end());
  HANDLE h = ::CreateFileW(wide.c_str(), READ_CONTROL | GENERIC_READ, 0, nullptr, OPEN_EXISTING, 0,
                           nullptr);
  ASSERT_NE(h, INVALID_HANDLE_VALUE) << "open: " << ::GetLastError();
  PACL dacl = nullptr;
  PSECURITY_DESCRIPTOR sd = nullptr;
  DWORD rc = ::GetSecurityInfo(h, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr,
                               &dacl, nullptr, &sd);
  ::CloseHandle(h);
  if (rc != ERROR_SUCCESS || dacl == nullptr) {
    if (sd) ::LocalFree(sd);
    GTEST_SKIP() << "GetSecurityInfo gave no DACL for the pipe (error " << rc
                 << "): this Windows (Wine?) does not report it, so it cannot be checked here";
  }
  HANDLE token = nullptr;
  ASSERT_TRUE(::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &token));
  std::vector<unsigned char> user(256);
  DWORD size = 0;
  ASSERT_TRUE(
      ::GetTokenInformation(token, TokenUser, user.data(), static_cast<DWORD>(user.size()), &size));
  ::CloseHandle(token);
  PSID me = reinterpret_cast<TOKEN_USER*>(user.data())->User.Sid;
  EXPECT_EQ(dacl->AceCount, 1) << "entries in the pipe's DACL";
  void* ace = nullptr;
  if (dacl->AceCount >= 1 && ::GetAce(dacl, 0, &ace)) {
    auto* allowed = static_cast<ACCESS_ALLOWED_ACE*>(ace);
    EXPECT_EQ(allowed->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
    EXPECT_TRUE(::EqualSid(reinterpret_cast<PSID>(&allowed->SidStart), me))
        << "the one entry is not this user's SID";
  }
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  if (::GetSecurityDescriptorControl(sd, &control, &revision)) {
    EXPECT_TRUE(control & SE_DACL_PROTECTED) << "the DACL inherits entries";
  }
  ::LocalFree(sd);
  listener->close();
  io.run_for(50ms);
}

TEST(Pipe, TheDefaultEndpointIsAPipeNamedAfterTheHubAndItsProcess) {
  std::string e = default_endpoint("my app");
  EXPECT_EQ(e, R"(\\.\pipe\switchboard-my_app-)" + std::to_string(::GetCurrentProcessId()));
}

}  // namespace
}  // namespace switchboard::testing
