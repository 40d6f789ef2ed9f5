// Endpoint security and identity (issue 5, "Security"), in addition to transport_test.cc (0700
// directory, 0600 socket, abstract names refused, SO_PEERCRED user check) and handshake_test.cc
// (constant_time_equal): what the kernel sees of the endpoint, that the token never shows up in
// anything the hub reports, and that identity comes from the kernel and the handshake only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "test_support.h"

namespace switchboard::testing {
namespace {

// The kernel's own list of Unix sockets: a filesystem socket is listed by its path, an abstract
// one by '@' and its name.
std::vector<std::string> unix_socket_paths() {
  std::ifstream in("/proc/net/unix");
  std::vector<std::string> out;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    auto space = line.rfind(' ');
    if (space != std::string::npos && space + 1 < line.size())
      out.push_back(line.substr(space + 1));
  }
  return out;
}

TEST(Security, TheDefaultEndpointIsAFilesystemSocketInAPrivateDirectory) {
  HubOptions opt;
  opt.name = "security-test";
  Hub hub(opt);
  ASSERT_TRUE(hub.start().ok());
  const std::string& path = hub.endpoint();
  ASSERT_EQ(path.front(), '/');
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string dir = path.substr(0, path.rfind('/'));
  ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  auto sockets = unix_socket_paths();
  if (sockets.empty()) {
    std::printf(
        "[ note ] /proc/net/unix is not readable here; the abstract-name check ran only "
        "through the path checks above\n");
  } else {
    EXPECT_NE(std::find(sockets.begin(), sockets.end(), path), sockets.end())
        << "the kernel lists the hub's socket under its path";
    for (const std::string& s : sockets) {
      EXPECT_FALSE(s.front() == '@' && s.find("security-test") != std::string::npos)
          << "an abstract socket of the hub: " << s;
    }
  }
  hub.close();
}

TEST(Security, TheTokenNeverAppearsInWhatTheHubReportsOrSends) {
  const std::string token = "5ecret70ken5ecret70ken5ecret70ken5ecret70ken5ecret70ken5ecret70k";
  const std::string wrong = "wr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0ngwr0n";
  HubOptions opt;
  opt.token = token;
  HubFixture f(opt);
  std::string everything;
  {
    RawPeer bad(f.hub->endpoint());
    auto goaway = bad.handshake(wrong);
    ASSERT_TRUE(goaway.has_value());
    EXPECT_EQ(goaway->topic, "E_AUTH");
    everything += goaway->topic + decode_message(goaway->payload);
    RawPeer good(f.hub->endpoint());
    auto welcome = good.handshake(token);
    ASSERT_EQ(welcome->kind, Kind::welcome);
    everything += std::string(welcome->payload.view());
    ASSERT_TRUE(good.write(frame_bytes(make(Kind::invoke, "nobody", 1))));
    auto err = good.read_frame();
    ASSERT_TRUE(err.has_value());
    everything += decode_message(err->payload);
  }
  ASSERT_TRUE(f.peers.wait_departed(2));
  for (auto type : {PeerEvent::Type::joined, PeerEvent::Type::left, PeerEvent::Type::rejected}) {
    for (const PeerEvent& e : f.peers.of_type(type)) {
      everything += e.role + e.name + e.reason.to_string();
    }
  }
  EXPECT_NE(everything.find("wrong token"), std::string::npos) << "the reasons were collected";
  EXPECT_EQ(everything.find(token), std::string::npos);
  EXPECT_EQ(everything.find(wrong), std::string::npos);
  EXPECT_EQ(everything.find("5ecret"), std::string::npos) << "not even a prefix";
}

TEST(Security, PidComesFromTheKernelNotFromHello) {
  HubFixture f;
  RawPeer liar(f.hub->endpoint());
  Hello h;
  h.protocol = kProtocolVersion;
  h.token = f.hub->token();
  h.role = "main";
  h.name = "liar";
  h.pid = 1;  // claims to be init
  Envelope e;
  e.kind = Kind::hello;
  e.payload = encode_hello(h);
  ASSERT_TRUE(liar.write(frame_bytes(e)));
  ASSERT_EQ(liar.read_frame()->kind, Kind::welcome);
  ASSERT_TRUE(f.peers.wait(PeerEvent::Type::joined, 1));
  EXPECT_EQ(f.peers.of_type(PeerEvent::Type::joined)[0].pid,
            static_cast<std::uint64_t>(::getpid()));
}

TEST(Security, SenderIdsAreTheHubsWhateverAPeerWritesInItsEnvelope) {
  HubFixture f;
  RawPeer server(f.hub->endpoint()), caller(f.hub->endpoint()), listener(f.hub->endpoint());
  std::uint64_t ids[3];
  int i = 0;
  for (RawPeer* p : {&server, &caller, &listener}) {
    auto w = p->handshake(f.hub->token());
    ASSERT_EQ(w->kind, Kind::welcome);
    Welcome welcome;
    ASSERT_TRUE(decode_welcome(w->payload, welcome).ok());
    ids[i++] = welcome.peer_id;
  }
  auto forged = [](Kind kind, std::string topic, std::uint64_t id, std::uint64_t sender) {
    Envelope e = make(kind, std::move(topic), id, "x");
    e.sender = sender;
    e.flags = kFlagFromHub;  // and poses as the hub
    return frame_bytes(e);
  };
  ASSERT_TRUE(server.write(frame_bytes(make(Kind::register_, "svc", 1))));
  ASSERT_EQ(server.read_frame()->kind, Kind::result);
  ASSERT_TRUE(listener.write(frame_bytes(make(Kind::subscribe, "news", 1))));
  ASSERT_EQ(listener.read_frame()->kind, Kind::result);
  // An event and an invoke claiming to come from the server (or from id 0, or the hub).
  ASSERT_TRUE(caller.write(forged(Kind::event, "news", 0, ids[0])));
  ASSERT_TRUE(caller.write(forged(Kind::invoke, "svc", 5, 0)));
  auto ev = listener.read_frame();
  ASSERT_TRUE(ev && ev->kind == Kind::event);
  EXPECT_EQ(ev->sender, ids[1]);
  EXPECT_EQ(ev->flags & kFlagFromHub, 0u);
  auto inv = server.read_frame();
  ASSERT_TRUE(inv && inv->kind == Kind::invoke);
  EXPECT_EQ(inv->sender, ids[1]);
  // The reply claims to come from the listener, and to be the hub's own error.
  ASSERT_TRUE(server.write(forged(Kind::error, "E_REMOTE", inv->id, ids[2])));
  auto reply = caller.read_frame();
  ASSERT_TRUE(reply && reply->kind == Kind::error);
  EXPECT_EQ(reply->id, 5u);
  EXPECT_EQ(reply->sender, ids[0]);
  EXPECT_EQ(reply->flags & kFlagFromHub, 0u);
  // Announcing a peer is the hub's business alone.
  ASSERT_TRUE(caller.write(forged(Kind::peer, "main", 9, 0)));
  auto refused = caller.read_frame();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->kind, Kind::error);
  EXPECT_EQ(refused->topic, "E_PROTOCOL");
  // Everything sent to the listener before its PONG has been read by then.
  ASSERT_TRUE(listener.write(frame_bytes(make(Kind::ping, "", 3))));
  ASSERT_EQ(listener.read_frame()->kind, Kind::pong);
  EXPECT_EQ(listener.peers_seen, 2) << "the listener learnt only of the real server and caller";
}

}  // namespace
}  // namespace switchboard::testing
