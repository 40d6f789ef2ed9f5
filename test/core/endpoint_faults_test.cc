// Faults around the endpoint: the socket file deleted while the hub runs, a runtime directory
// that fails the checks (foreign owner, open to group or others, a symlink), and a second hub
// process on a live endpoint.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "hub.h"
#include "spawn_support.h"
#include "test_support.h"

namespace switchboard::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for a file-system condition, which nothing signals, by looking every few ms until a
// deadline.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds deadline = 5000ms) {
  auto until = Clock::now() + deadline;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

bool is_socket(const std::string& path, ino_t* inode = nullptr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  if (inode) *inode = st.st_ino;
  return true;
}

Status start_at(const std::string& endpoint, std::unique_ptr<Hub>& out) {
  HubOptions opt;
  opt.endpoint = endpoint;
  opt.token = "t";
  out = std::make_unique<Hub>(opt);
  return out->start();
}

// --- The socket file deleted ---------------------------------------------------------------

HubOptions checking(std::chrono::milliseconds interval) {
  HubOptions opt;
  opt.endpoint_check_interval = interval;
  return opt;
}

TEST(DeletedEndpoint, IsRecreatedWhileOpenConnectionsKeepWorking) {
  HubFixture f(checking(50ms));
  const std::string path = f.hub->endpoint();
  ino_t first = 0;
  ASSERT_TRUE(is_socket(path, &first));
  TestClient sender(*f.hub);
  TestClient receiver(*f.hub);
  receiver.subscribe("x");

  auto deleted_at = Clock::now();
  ASSERT_EQ(::unlink(path.c_str()), 0);
  // Connections already open do not need the file.
  ASSERT_TRUE(sender.send(make(Kind::event, "x", 0, "during")).ok());
  ASSERT_TRUE(receiver.rec.wait_count(Kind::event, 1));

  ino_t second = 0;
  ASSERT_TRUE(eventually([&] { return is_socket(path, &second); })) << "not re-created";
  double took = std::chrono::duration<double, std::milli>(Clock::now() - deleted_at).count();
  EXPECT_NE(second, first);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Counted just after the file appears (the I/O thread binds, then counts): seen, not raced.
  EXPECT_TRUE(eventually([&] { return f.hub->stats().endpoint_restored == 1u; }))
      << f.hub->stats().endpoint_restored;
  // New processes can join again, and reach the old ones.
  TestClient late(*f.hub);
  ASSERT_TRUE(late.send(make(Kind::event, "x", 0, "after")).ok());
  ASSERT_TRUE(receiver.rec.wait_count(Kind::event, 2));
  ASSERT_TRUE(sender.send(make(Kind::event, "x", 0, "old")).ok());
  ASSERT_TRUE(receiver.rec.wait_count(Kind::event, 3));
  std::printf(
      "[ measured ] socket file re-created %.0f ms after it was deleted (checked every "
      "50 ms)\n",
      took);
  f.hub->close();
  EXPECT_FALSE(is_socket(path)) << "close() removes the re-created file too";
}

TEST(DeletedEndpoint, ADeletedDirectoryIsRecreatedPrivate) {
  TempDir dir;
  const std::string sub = dir.file("run");
  HubOptions opt = checking(50ms);
  opt.endpoint = sub + "/hub.sock";
  HubFixture f(opt);
  TestClient before(*f.hub);
  ASSERT_EQ(::unlink(opt.endpoint.c_str()), 0);
  ASSERT_EQ(::rmdir(sub.c_str()), 0);  // what a cleaner of /tmp does
  ASSERT_TRUE(eventually([&] { return is_socket(opt.endpoint); })) << "not re-created";
  struct stat st {};
  ASSERT_EQ(::lstat(sub.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  TestClient after(*f.hub);
  EXPECT_EQ(f.hub->stats().peers, 2u);
}

TEST(DeletedEndpoint, AFileSomeoneElsePutThereIsLeftAlone) {
  HubFixture f(checking(20ms));
  const std::string path = f.hub->endpoint();
  ASSERT_EQ(::unlink(path.c_str()), 0);
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs("theirs", file);
  std::fclose(file);
  // Ten check intervals: a wait for something that must not happen.
  std::this_thread::sleep_for(200ms);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 6);
  EXPECT_EQ(f.hub->stats().endpoint_restored, 0u);
  // Once it is gone again the hub takes the path back.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_TRUE(eventually([&] { return is_socket(path); }));
  TestClient joined(*f.hub);
}

TEST(DeletedEndpoint, ZeroIntervalDisablesTheCheck) {
  HubFixture f(checking(0ms));
  ASSERT_EQ(::unlink(f.hub->endpoint().c_str()), 0);
  std::this_thread::sleep_for(100ms);  // a wait for something that must not happen
  EXPECT_FALSE(is_socket(f.hub->endpoint()));
  EXPECT_EQ(f.hub->stats().endpoint_restored, 0u);
}

// --- The runtime directory -----------------------------------------------------------------

TEST(RuntimeDirectory, OpenToGroupOrOthersIsRefusedWithTheModeAndTheFix) {
  for (mode_t mode : {0750, 0770, 0710, 0701, 0705, 0707, 0777}) {
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), mode), 0);
    std::unique_ptr<Hub> hub;
    Status s = start_at(dir.file("hub.sock"), hub);
    EXPECT_EQ(s.code(), Errc::endpoint_unsafe) << std::oct << mode;
    char shown[8];
    std::snprintf(shown, sizeof shown, "%03o", static_cast<unsigned>(mode));
    EXPECT_NE(s.message().find(std::string("mode ") + shown), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("chmod 700"), std::string::npos) << s.message();
    EXPECT_FALSE(is_socket(dir.file("hub.sock"))) << "nothing is created in a refused directory";
  }
}

TEST(RuntimeDirectory, OwnedByAnotherUserIsRefused) {
  TempDir dir;
  std::string foreign;
  std::string owner;
  if (::geteuid() == 0) {
    // Root can make a private directory that belongs to someone else.
    foreign = dir.file("foreign");
    ASSERT_EQ(::mkdir(foreign.c_str(), 0700), 0);
    ASSERT_EQ(::chown(foreign.c_str(), 65534, 65534), 0);
    owner = "65534";
  } else {
    // Anyone else can point the hub at a directory of root's, such as /.
    foreign = "/";
    owner = "0";
    std::printf(
        "[ note ] not root: testing a directory of root's (/) instead of one chowned "
        "to another user\n");
  }
  std::unique_ptr<Hub> hub;
  Status s = start_at(foreign + (foreign == "/" ? "" : "/") + "switchboard-test.sock", hub);
  EXPECT_EQ(s.code(), Errc::endpoint_unsafe);
  EXPECT_NE(s.message().find("belongs to uid " + owner), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("choose a directory you own"), std::string::npos) << s.message();
}

TEST(RuntimeDirectory, ASymlinkInPlaceOfTheDirectoryIsRefused) {
  TempDir dir;
  std::string real = dir.file("real");
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(real.c_str(), dir.file("link").c_str()), 0);
  std::unique_ptr<Hub> hub;
  Status s = start_at(dir.file("link") + "/hub.sock", hub);
  EXPECT_EQ(s.code(), Errc::endpoint_unsafe);
  EXPECT_NE(s.message().find("symbolic link"), std::string::npos) << s.message();
  EXPECT_FALSE(is_socket(real + "/hub.sock")) << "nothing is created behind the link";
}

TEST(RuntimeDirectory, ASymlinkInPlaceOfTheSocketIsRefusedAndKept) {
  TempDir dir;
  TempDir elsewhere;
  // A link to a path where nothing is yet: binding through it would create a socket there.
  ASSERT_EQ(::symlink(elsewhere.file("real.sock").c_str(), dir.file("hub.sock").c_str()), 0);
  std::unique_ptr<Hub> hub;
  Status s = start_at(dir.file("hub.sock"), hub);
  EXPECT_EQ(s.code(), Errc::endpoint_unsafe);
  EXPECT_NE(s.message().find("not a socket"), std::string::npos) << s.message();
  struct stat st {};
  ASSERT_EQ(::lstat(dir.file("hub.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced";
  EXPECT_FALSE(is_socket(elsewhere.file("real.sock"))) << "the hub bound through the link";
}

// --- A second hub on a live endpoint -------------------------------------------------------

TEST(SecondHub, AnotherProcessOnALiveEndpointIsRefusedAndUnlinksNothing) {
  HubFixture f;
  const std::string path = f.hub->endpoint();
  ino_t before = 0;
  ASSERT_TRUE(is_socket(path, &before));
  TestClient connected(*f.hub);
  Spawned second(SWITCHBOARD_HUB_PEER, {path, "other-token", "{fd}", "x", "0"});
  ASSERT_TRUE(second.started());
  EXPECT_EQ(second.next(), 0) << "the second hub started";
  int status = second.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << "exit 3 is E_ENDPOINT_IN_USE (see hub_peer.cc)";
  ino_t after = 0;
  ASSERT_TRUE(is_socket(path, &after)) << "the live socket file was removed";
  EXPECT_EQ(after, before);
  // Both the open connection and new ones still reach the first hub.
  connected.subscribe("first");
  RawPeer fresh(path);
  auto welcome = fresh.handshake("test-token");
  ASSERT_TRUE(welcome.has_value());
  EXPECT_EQ(welcome->kind, Kind::welcome);
}

}  // namespace
}  // namespace switchboard::testing
