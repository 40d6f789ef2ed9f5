// Connection's write path: frames a caller writes directly (send_direct, from any thread) and
// frames the I/O thread queues (send) share one order on the wire, a write the socket cannot
// take at once is finished by the I/O thread, and a write that finds the peer gone does not lose
// what the peer sent before it went. Flow control (issue 11): notify_below() fires once when the
// queue has drained to its threshold, and bytes_written() counts what reached the socket.
#include "connection.h"

#include <gtest/gtest.h>

#include <asio/post.hpp>

#include <functional>
#include <future>
#include <memory>
#include <optional>
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

  explicit ConnectionPair(
      Connection::FramesHandler on_frames = [](std::vector<Slice>&) {},
      Connection::ClosedHandler on_closed = [](const Status&) {}) {
    Status s;
    listener = listen_endpoint(io.context(), dir.file("c.sock"), s);
    EXPECT_TRUE(s.ok()) << s.to_string();
    auto accepted = std::make_shared<std::promise<void>>();
    listener->accept(
        [this, accepted, on_frames = std::move(on_frames), on_closed = std::move(on_closed)](
            Status st, std::unique_ptr<Stream> stream) mutable {
          EXPECT_TRUE(st.ok()) << st.to_string();
          if (st.ok()) {
            conn = std::make_shared<Connection>(io.context(), std::move(stream), kDefaultMaxFrame,
                                                &counters);
            conn->start(std::move(on_frames), std::move(on_closed));
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

// A write that finds the peer gone (EPIPE) must not throw away what the peer sent before it went.
// This is the order in which a hub can notice a client that emitted, said GOAWAY and closed: it
// answers an earlier frame of that client, the answer finds the socket closed, and only then
// would the I/O thread have looked at the frames waiting in the socket. Here the I/O thread is
// held while the peer writes its last frames and closes, and then queues a frame to it, so its
// flush runs before it can see that the socket is readable.
TEST(Connection, WhatThePeerSentBeforeItWentArrivesWhenAWriteFindsItGoneFirst) {
  struct Seen {
    Waiter waiter;
    std::vector<std::string> frames;
    std::optional<Status> closed;
  } seen;  // outlives the pair, whose connection calls into it
  ConnectionPair p(
      [&seen](std::vector<Slice>& frames) {
        seen.waiter.update([&] {
          for (const Slice& f : frames) {
            Envelope e;
            EXPECT_TRUE(decode_frame(f, e).ok());
            seen.frames.push_back(e.topic + " " + std::string(e.payload.view()));
          }
        });
      },
      [&seen](const Status& why) { seen.waiter.update([&] { seen.closed = why; }); });
  ASSERT_TRUE(p.conn);
  auto held = std::make_shared<std::promise<void>>();
  auto gone = std::make_shared<std::promise<void>>();
  std::shared_future<void> peer_gone = gone->get_future().share();
  asio::post(p.io.context(), [conn = p.conn, held, peer_gone] {
    held->set_value();
    peer_gone.wait();
    conn->send(event_frame("to-peer", 0));
  });
  held->get_future().wait();
  std::string last;
  for (int i = 0; i < 3; ++i) last += frame_bytes(make(Kind::event, "last", 0, std::to_string(i)));
  ASSERT_TRUE(p.peer->write(last));
  p.peer->close();
  gone->set_value();

  ASSERT_TRUE(seen.waiter.wait_for([&] { return seen.closed.has_value(); }))
      << "the connection did not report its end";
  std::lock_guard lock(seen.waiter.mutex());
  EXPECT_EQ(seen.frames, (std::vector<std::string>{"last 0", "last 1", "last 2"}))
      << "the frames the peer sent before it closed were dropped";
  // The end is still reported as the failed write (docs/API.md, "A reader vanishes").
  EXPECT_EQ(seen.closed->code(), Errc::io_error) << seen.closed->to_string();
  EXPECT_FALSE(p.conn->is_open());
}

// --- Flow control (issue 11) -------------------------------------------------------------------

// Queues frames of 64 KiB directly until at least `at_least` bytes wait in the connection's queue
// (the peer reads nothing, so the socket takes ~200 KiB and the rest stays queued). Returns the
// bytes of every frame queued, for bytes_written().
std::uint64_t fill(ConnectionPair& p, std::size_t at_least, int& seq) {
  std::uint64_t total = 0;
  while (p.conn->queued_bytes() < at_least) {
    std::vector<WireFrame> frames;
    frames.push_back(event_frame("fill", seq++, 64u << 10));
    total += frames.back().size();
    p.conn->send_direct(frames);
  }
  return total;
}

// Reads frames until `n` have arrived, checking their order; false on a gap or a timeout.
bool read_frames(ConnectionPair& p, int first, int n) {
  for (int i = first; i < first + n; ++i) {
    auto e = p.peer->read_frame();
    if (!e || seq_of(*e) != i) return false;
  }
  return true;
}

// What a notify_below() callback saw when it ran.
struct Notified {
  Waiter waiter;
  int count = 0;
  bool on_io_thread = true;
  std::function<void()> callback(ConnectionPair& p) {
    return [this, &p] {
      waiter.update([&] {
        ++count;
        on_io_thread = on_io_thread && p.io.in_thread();
      });
    };
  }
  int get() {
    std::lock_guard lock(waiter.mutex());
    return count;
  }
  bool wait(int n) {
    return waiter.wait_for([&] { return count >= n; });
  }
};

TEST(Connection, NotifyBelowFiresOnceWhenTheQueueHasDrainedToItsThreshold) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  Notified notified;
  int seq = 0;
  fill(p, 1u << 20, seq);
  constexpr std::size_t kThreshold = 256u << 10;
  p.conn->notify_below(kThreshold, notified.callback(p));
  // Nothing was read, so the queue has not shrunk: no call, even once the I/O thread has run.
  p.on_io([] {});
  EXPECT_EQ(notified.get(), 0);
  EXPECT_GT(p.conn->queued_bytes(), kThreshold);

  ASSERT_TRUE(read_frames(p, 0, seq));
  ASSERT_TRUE(notified.wait(1)) << "the queue drained but notify_below() did not fire";
  EXPECT_TRUE(notified.on_io_thread) << "the callback must be posted to the I/O thread";

  // Once only: a second fill and drain does not call it again.
  const int first = seq;
  fill(p, 1u << 20, seq);
  ASSERT_TRUE(read_frames(p, first, seq - first));
  p.on_io([] {});
  EXPECT_EQ(notified.get(), 1);
}

TEST(Connection, NotifyBelowFiresAtOnceWhenTheQueueIsAlreadyBelow) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  // An idle connection: nothing queued, so even a threshold of zero holds now.
  Notified idle;
  p.conn->notify_below(0, idle.callback(p));
  ASSERT_TRUE(idle.wait(1));
  EXPECT_TRUE(idle.on_io_thread);
  // A full one whose queue is under a higher threshold: fires without the peer reading a byte.
  int seq = 0;
  fill(p, 512u << 10, seq);
  Notified high;
  p.conn->notify_below(p.conn->queued_bytes() + (1u << 20), high.callback(p));
  ASSERT_TRUE(high.wait(1));
  EXPECT_GT(p.conn->queued_bytes(), 0u) << "fired because the peer read, not at once";
  p.on_io([] {});
  EXPECT_EQ(idle.get(), 1);
  EXPECT_EQ(high.get(), 1);
}

TEST(Connection, NotifyBelowNeverFiresAfterClose) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  int seq = 0;
  fill(p, 1u << 20, seq);
  Notified armed;
  p.conn->notify_below(0, armed.callback(p));
  // Closing drops the queue (which is, in a sense, "below"): the waiter must not be told the
  // bytes left, because they did not.
  p.on_io([conn = p.conn] { conn->close(); });
  EXPECT_TRUE(p.peer->read_until_eof());
  Notified late;
  p.conn->notify_below(0, late.callback(p));  // on a closed connection: dropped as well
  p.on_io([] {});
  p.on_io([] {});  // anything posted by the first fence has run by now too
  EXPECT_EQ(armed.get(), 0);
  EXPECT_EQ(late.get(), 0);
}

TEST(Connection, ALaterNotifyBelowReplacesOneThatHasNotFired) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  int seq = 0;
  fill(p, 1u << 20, seq);
  Notified first, second;
  p.conn->notify_below(0, first.callback(p));
  p.conn->notify_below(0, second.callback(p));
  ASSERT_TRUE(read_frames(p, 0, seq));
  ASSERT_TRUE(second.wait(1));
  p.on_io([] {});
  EXPECT_EQ(first.get(), 0);
  EXPECT_EQ(second.get(), 1);
}

TEST(Connection, BytesWrittenCountsEveryByteThatReachedTheSocket) {
  ConnectionPair p;
  ASSERT_TRUE(p.conn);
  EXPECT_EQ(p.conn->bytes_written(), 0u);
  // Written three ways: directly into an idle socket, through the I/O thread's queue, and the
  // remainder of a partial direct write that the I/O thread finishes.
  std::uint64_t total = 0;
  int seq = 0;
  std::vector<WireFrame> small;
  small.push_back(event_frame("fill", seq++));
  total += small.back().size();
  p.conn->send_direct(small);
  EXPECT_EQ(p.conn->bytes_written(), total) << "a direct write into an idle socket counts at once";
  WireFrame queued = event_frame("fill", seq++, 1000);
  total += queued.size();
  p.on_io([conn = p.conn, queued] { conn->send(queued); });
  total += fill(p, 1u << 20, seq);
  EXPECT_LT(p.conn->bytes_written(), total) << "the peer has not read; some must still be queued";
  ASSERT_TRUE(read_frames(p, 0, seq));
  // The write that sent the last bytes has returned by the time the I/O thread runs this.
  p.on_io([] {});
  EXPECT_EQ(p.conn->bytes_written(), total);
  EXPECT_EQ(p.conn->queued_bytes(), 0u);
}

}  // namespace
}  // namespace switchboard::testing
