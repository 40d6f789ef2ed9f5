// Connection's write path: frames a caller writes directly (send_direct, from any thread) and
// frames the I/O thread queues (send) share one order on the wire, and a write the socket cannot
// take at once is finished by the I/O thread.
#include "connection.h"

#include <gtest/gtest.h>

#include <asio/post.hpp>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "io_thread.h"
#include "test_support.h"
#include "transport.h"

namespace switchboard::testing {
namespace {

// A Connection on its own I/O thread (accepted from a listener) with a RawPeer at the other end
// that reads only when the test says so.
struct ConnectionPair {
  TempDir dir;
  IoThread io;
  std::unique_ptr<Listener> listener;
  std::shared_ptr<Connection> conn;
  std::unique_ptr<RawPeer> peer;
  ConnectionCounters counters;

  ConnectionPair() {
    Status s;
    listener = listen_endpoint(io.context(), dir.file("c.sock"), s);
    EXPECT_TRUE(s.ok()) << s.to_string();
    auto accepted = std::make_shared<std::promise<void>>();
    listener->accept([this, accepted](Status st, std::unique_ptr<Stream> stream) {
      EXPECT_TRUE(st.ok()) << st.to_string();
      if (st.ok()) {
        conn = std::make_shared<Connection>(io.context(), std::move(stream), kDefaultMaxFrame,
                                            &counters);
        conn->start([](std::vector<Slice>&) {}, [](const Status&) {});
      }
      accepted->set_value();
    });
    io.start();
    peer = std::make_unique<RawPeer>(dir.file("c.sock"));
    EXPECT_TRUE(peer->connected());
    EXPECT_EQ(accepted->get_future().wait_for(5s), std::future_status::ready);
  }
  ~ConnectionPair() {
    asio::post(io.context(), [this] {
      if (conn) conn->close();
      listener->close();
    });
    io.stop();
  }
  // Runs `fn` on the I/O thread and waits for it.
  template <typename Fn>
  void on_io(Fn fn) {
    auto done = std::make_shared<std::promise<void>>();
    asio::post(io.context(), [fn, done] {
      fn();
      done->set_value();
    });
    done->get_future().wait();
  }
};

WireFrame event_frame(const std::string& topic, int seq, std::size_t pad = 0) {
  std::string payload = std::to_string(seq);
  payload.resize(payload.size() + pad, '.');
  WireFrame f;
  EXPECT_TRUE(encode_frame(make(Kind::event, topic, 0, payload), f).ok());
  return f;
}

int seq_of(const Envelope& e) {
  std::string_view v = e.payload.view();
  return std::stoi(std::string(v.substr(0, v.find('.'))));
}

TEST(Connection, ADirectWriteNeverOvertakesFramesTheIoThreadQueued) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  constexpr int kRounds = 200;
  for (int i = 0; i < kRounds; ++i) {
    auto queued = std::make_shared<std::promise<void>>();
    auto go = std::make_shared<std::promise<void>>();
    std::shared_future<void> released = go->get_future().share();
    // The I/O thread queues a frame and stays busy, so its flush cannot run before the direct
    // write below: the direct write must send the queued frame first.
    asio::post(p.io.context(), [conn = p.conn, queued, released, i] {
      conn->send(event_frame("io", i));
      queued->set_value();
      released.wait();
    });
    queued->get_future().wait();
    std::vector<WireFrame> direct;
    direct.push_back(event_frame("direct", i));
    p.conn->send_direct(direct);
    go->set_value();
  }
  for (int i = 0; i < kRounds; ++i) {
    for (const char* topic : {"io", "direct"}) {
      auto e = p.peer->read_frame();
      ASSERT_TRUE(e.has_value()) << "frame " << topic << " " << i << " did not arrive";
      ASSERT_EQ(e->topic, topic) << "round " << i;
      ASSERT_EQ(seq_of(*e), i);
    }
  }
}

TEST(Connection, ADirectWriteIntoAnIdleSocketLeavesOnTheCallingThread) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  std::vector<WireFrame> frames;
  for (int i = 0; i < 3; ++i) frames.push_back(event_frame("now", i));
  p.conn->send_direct(frames);
  // Written by this call: nothing was handed to the I/O thread.
  EXPECT_EQ(p.counters.direct_writes.load(), 1u);
  EXPECT_EQ(p.counters.frames_out.load(), 3u);
  EXPECT_EQ(p.conn->queued_bytes(), 0u);
  for (int i = 0; i < 3; ++i) {
    auto e = p.peer->read_frame();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(seq_of(*e), i);
  }
}

TEST(Connection, APartialDirectWriteIsFinishedByTheIoThreadInOrder) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  // 8 MiB while the peer does not read: far more than a Unix socket's buffer (~200 KiB by
  // default), so the direct write is partial and the rest must go through the I/O thread.
  constexpr int kFrames = 128;
  constexpr std::size_t kPad = 64u << 10;
  std::vector<WireFrame> first, second;
  for (int i = 0; i < kFrames / 2; ++i) first.push_back(event_frame("bulk", i, kPad));
  for (int i = kFrames / 2; i < kFrames; ++i) second.push_back(event_frame("bulk", i, kPad));
  p.conn->send_direct(first);
  ASSERT_GT(p.conn->queued_bytes(), 0u)
      << "the socket took 4 MiB at once; this machine's socket buffer is too large for the "
         "partial-write case to be exercised";
  EXPECT_EQ(p.counters.direct_writes.load(), 1u);
  // Queued behind the remainder (which the I/O thread now owns), not written past it.
  p.conn->send_direct(second);
  EXPECT_EQ(p.counters.direct_writes.load(), 1u);
  p.on_io([conn = p.conn] { conn->send(event_frame("bulk", kFrames)); });
  for (int i = 0; i <= kFrames; ++i) {
    auto e = p.peer->read_frame();
    ASSERT_TRUE(e.has_value()) << "frame " << i << " did not arrive";
    ASSERT_EQ(seq_of(*e), i);
    if (i < kFrames) {
      ASSERT_EQ(e->payload.size, std::to_string(i).size() + kPad);
    }
  }
  p.on_io([] {});  // the write that sent the last bytes has counted them by now
  EXPECT_EQ(p.counters.frames_out.load(), static_cast<std::uint64_t>(kFrames + 1));
  EXPECT_GT(p.counters.writev_calls.load(), p.counters.direct_writes.load());
}

TEST(Connection, NothingIsWrittenDirectlyAfterClose) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  p.on_io([conn = p.conn] { conn->close(); });
  std::vector<WireFrame> late;
  late.push_back(event_frame("late", 1));
  p.conn->send_direct(late);
  EXPECT_EQ(p.counters.writev_calls.load(), 0u);
  EXPECT_FALSE(p.peer->read_frame().has_value()) << "the peer must see the end of the stream only";
}

}  // namespace
}  // namespace switchboard::testing
