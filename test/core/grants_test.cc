// Grants (DESIGN.md, "Security"): a peer joined with grants may emit, subscribe to, invoke and
// serve only what they list; the hub refuses the rest with E_FORBIDDEN and delivers nothing.
#include "grants.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace switchboard::testing {
namespace {

TEST(Grants, ExactNamesAndPrefixPatterns) {
  std::vector<std::string> g{"app:version", "job:*"};
  EXPECT_TRUE(granted(g, "app:version"));
  EXPECT_FALSE(granted(g, "app:versions"));
  EXPECT_TRUE(granted(g, "job:progress"));
  EXPECT_TRUE(granted(g, "job:"));
  EXPECT_FALSE(granted(g, "jobs"));
  EXPECT_FALSE(granted({}, "anything"));
  EXPECT_TRUE(granted({"*"}, "anything"));
}

TEST(Grants, APatternIsCoveredOnlyByAPatternAtLeastAsWide) {
  EXPECT_TRUE(granted({"job:*"}, "job:*"));
  EXPECT_TRUE(granted({"job:*"}, "job:a*"));
  EXPECT_TRUE(granted({"*"}, "*"));
  EXPECT_FALSE(granted({"job:a*"}, "job:*"));
  EXPECT_FALSE(granted({"job:x"}, "job:*"));
  EXPECT_FALSE(granted({"job:*"}, "*"));
}

// A page-like peer (connect_local with grants) against a trusted socket client.
struct GrantedPeer {
  explicit GrantedPeer(Hub& hub, Grants grants) {
    LocalPeerInfo info{"renderer", "page", 0, std::make_shared<const Grants>(std::move(grants))};
    port = hub.connect_local(info, rec.callbacks());
  }
  Status send(std::vector<Envelope> batch) { return port->submit(std::move(batch)); }
  Recorder rec;
  std::unique_ptr<Port> port;
};

TEST(Grants, WhatIsNotGrantedIsRefusedAndNothingIsDelivered) {
  HubFixture f;
  TestClient trusted(*f.hub);
  ASSERT_EQ(trusted.request(Kind::subscribe, "secret:*")->kind, Kind::result);
  ASSERT_EQ(trusted.request(Kind::subscribe, "job:*")->kind, Kind::result);
  ASSERT_EQ(trusted.request(Kind::register_, "admin:wipe")->kind, Kind::result);
  ASSERT_EQ(trusted.request(Kind::register_, "app:version")->kind, Kind::result);
  Client* answering = trusted.client.get();
  trusted.rec.set_on_envelope([answering](const Envelope& e) {
    if (e.kind != Kind::invoke) return;
    std::vector<Envelope> reply;
    reply.push_back(make(Kind::result, "", e.id, "1.0"));
    (void)answering->submit(std::move(reply));
  });

  GrantedPeer page(*f.hub, Grants{{"job:*"}, {"job:*"}, {"app:version"}, {"page:*"}});
  ASSERT_NE(page.port, nullptr);
  std::vector<Envelope> batch;
  batch.push_back(make(Kind::event, "secret:key", 0, "stolen"));  // not granted
  batch.push_back(make(Kind::subscribe, "secret:*", 1));          // not granted
  batch.push_back(make(Kind::subscribe, "*", 2));                 // wider than granted
  batch.push_back(make(Kind::invoke, "admin:wipe", 3, "all"));    // not granted
  batch.push_back(make(Kind::register_, "admin:wipe", 4));        // not granted
  batch.push_back(make(Kind::event, "job:progress", 0, "50"));    // granted
  batch.push_back(make(Kind::subscribe, "job:*", 5));             // granted
  batch.push_back(make(Kind::invoke, "app:version", 6));          // granted
  batch.push_back(make(Kind::register_, "page:render", 7));       // granted
  batch.push_back(make(Kind::event, "job:fence", 0));             // granted, last
  ASSERT_TRUE(page.send(std::move(batch)).ok());

  for (std::uint64_t id : {1u, 2u, 3u, 4u}) {
    auto r = page.rec.wait_reply(id);
    ASSERT_TRUE(r.has_value()) << id;
    EXPECT_EQ(r->kind, Kind::error) << id;
    EXPECT_EQ(r->topic, "E_FORBIDDEN") << id;
  }
  for (std::uint64_t id : {5u, 7u}) {
    auto r = page.rec.wait_reply(id);
    ASSERT_TRUE(r.has_value()) << id;
    EXPECT_EQ(r->kind, Kind::result) << id;
  }
  auto version = page.rec.wait_reply(6);
  ASSERT_TRUE(version.has_value());
  EXPECT_EQ(version->payload, "1.0");
  // The refused event is answered with id 0; the granted one reached the subscriber, alone.
  auto refused = page.rec.wait_reply(0);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->topic, "E_FORBIDDEN");
  EXPECT_NE(refused->payload.find("secret:key"), std::string::npos);
  // The page's frames are routed in order: had the refused one gone out, it would come first.
  ASSERT_TRUE(trusted.rec.wait_count(Kind::event, 2));
  auto events = trusted.rec.of_kind(Kind::event);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].topic, "job:progress");
  EXPECT_EQ(events[1].topic, "job:fence");
  EXPECT_EQ(trusted.rec.count(Kind::invoke), 1u);  // app:version only, never admin:wipe
  EXPECT_EQ(f.hub->stats().handlers, 3u);          // admin:wipe, app:version, page:render
  page.port->close();
}

TEST(Grants, APeerWithoutGrantsMayDoEverything) {
  HubFixture f;
  Recorder rec;
  auto local = f.hub->connect_local({"main", "main", 0, nullptr}, rec.callbacks());
  std::vector<Envelope> batch;
  batch.push_back(make(Kind::subscribe, "*", 1));
  batch.push_back(make(Kind::register_, "anything", 2));
  ASSERT_TRUE(local->submit(std::move(batch)).ok());
  EXPECT_EQ(rec.wait_reply(1)->kind, Kind::result);
  EXPECT_EQ(rec.wait_reply(2)->kind, Kind::result);
  local->close();
}

}  // namespace
}  // namespace switchboard::testing
