// Tests for core/router.h: exact and prefix subscriptions, and the handler registry.
#include "router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace switchboard {
namespace {

std::vector<PeerId> subscribers_of(const Router& r, std::string_view topic) {
  std::vector<PeerId> out;
  r.subscribers(topic, out);
  std::sort(out.begin(), out.end());
  return out;
}

using Peers = std::vector<PeerId>;

TEST(Router, ExactSubscribersOnlyGetTheirTopic) {
  Router r;
  EXPECT_TRUE(r.subscribe(1, "job:1"));
  EXPECT_TRUE(r.subscribe(2, "job:2"));
  EXPECT_TRUE(r.subscribe(3, "job:1"));
  EXPECT_EQ(subscribers_of(r, "job:1"), (Peers{1, 3}));
  EXPECT_EQ(subscribers_of(r, "job:2"), (Peers{2}));
  EXPECT_EQ(subscribers_of(r, "job:3"), Peers{});
  EXPECT_EQ(subscribers_of(r, "job:"), Peers{});
  EXPECT_EQ(subscribers_of(r, "job:10"), Peers{});
}

TEST(Router, SubscribersReplacesTheOutputVector) {
  Router r;
  r.subscribe(1, "a");
  std::vector<PeerId> out = {99, 98};
  r.subscribers("a", out);
  EXPECT_EQ(out, (Peers{1}));
  r.subscribers("b", out);
  EXPECT_TRUE(out.empty());
}

TEST(Router, PatternMatchesTopicsWithItsPrefixOnly) {
  Router r;
  ASSERT_TRUE(r.subscribe(1, "job:*"));
  EXPECT_EQ(subscribers_of(r, "job:1"), (Peers{1}));
  EXPECT_EQ(subscribers_of(r, "job:progress:42"), (Peers{1}));
  EXPECT_EQ(subscribers_of(r, "job:"), (Peers{1}));
  EXPECT_EQ(subscribers_of(r, "jobs"), Peers{});
  EXPECT_EQ(subscribers_of(r, "job"), Peers{});
  EXPECT_EQ(subscribers_of(r, "xjob:1"), Peers{});
  EXPECT_EQ(subscribers_of(r, "Job:1"), Peers{});
  EXPECT_EQ(subscribers_of(r, "job:*"), (Peers{1}));  // a topic that looks like the pattern
}

TEST(Router, StarMatchesEveryTopic) {
  Router r;
  ASSERT_TRUE(r.subscribe(7, "*"));
  for (std::string_view t : {"a", "job:1", "jobs", "zzzz", "\x7f", "~"}) {
    EXPECT_EQ(subscribers_of(r, t), (Peers{7})) << t;
  }
}

TEST(Router, OverlappingPatternsMatchByPrefix) {
  Router r;
  r.subscribe(1, "a*");
  r.subscribe(2, "ab*");
  r.subscribe(3, "abc*");
  r.subscribe(4, "b*");
  r.subscribe(5, "abd");
  r.subscribe(6, "aa*");
  r.subscribe(7, "ac*");
  EXPECT_EQ(subscribers_of(r, "abd"), (Peers{1, 2, 5}));
  EXPECT_EQ(subscribers_of(r, "abcd"), (Peers{1, 2, 3}));
  EXPECT_EQ(subscribers_of(r, "ab"), (Peers{1, 2}));
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{1}));
  EXPECT_EQ(subscribers_of(r, "b"), (Peers{4}));
  EXPECT_EQ(subscribers_of(r, "c"), Peers{});
}

TEST(Router, PeerSubscribedExactlyAndByPatternAppearsOnce) {
  Router r;
  r.subscribe(1, "job:1");
  r.subscribe(1, "job:*");
  r.subscribe(1, "*");
  r.subscribe(2, "job:*");
  std::vector<PeerId> out;
  r.subscribers("job:1", out);
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, (Peers{1, 2}));
  EXPECT_EQ(subscribers_of(r, "other"), (Peers{1}));
}

TEST(Router, SubscribingTwiceChangesNothing) {
  Router r;
  EXPECT_TRUE(r.subscribe(1, "a"));
  EXPECT_FALSE(r.subscribe(1, "a"));
  EXPECT_TRUE(r.subscribe(1, "a*"));
  EXPECT_FALSE(r.subscribe(1, "a*"));
  EXPECT_EQ(r.subscription_count(), 2u);
  EXPECT_EQ(r.subscriptions_of(1), 2u);
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{1}));
}

TEST(Router, UnsubscribeStopsDelivery) {
  Router r;
  r.subscribe(1, "a");
  r.subscribe(2, "a");
  r.subscribe(1, "job:*");
  r.subscribe(2, "job:*");
  EXPECT_TRUE(r.unsubscribe(1, "a"));
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{2}));
  EXPECT_TRUE(r.unsubscribe(1, "job:*"));
  EXPECT_EQ(subscribers_of(r, "job:1"), (Peers{2}));
  EXPECT_EQ(r.subscription_count(), 2u);
  EXPECT_EQ(r.subscriptions_of(1), 0u);
  EXPECT_TRUE(r.unsubscribe(2, "a"));
  EXPECT_TRUE(r.unsubscribe(2, "job:*"));
  EXPECT_EQ(subscribers_of(r, "a"), Peers{});
  EXPECT_EQ(subscribers_of(r, "job:1"), Peers{});
  EXPECT_EQ(r.subscription_count(), 0u);
}

TEST(Router, UnsubscribeReturnsFalseWhenNotSubscribed) {
  Router r;
  EXPECT_FALSE(r.unsubscribe(1, "a"));  // unknown peer
  r.subscribe(1, "a");
  EXPECT_FALSE(r.unsubscribe(1, "b"));   // unknown topic
  EXPECT_FALSE(r.unsubscribe(1, "a*"));  // a pattern is not its prefix topic
  EXPECT_FALSE(r.unsubscribe(2, "a"));   // someone else's subscription
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{1}));
  EXPECT_TRUE(r.unsubscribe(1, "a"));
  EXPECT_FALSE(r.unsubscribe(1, "a"));  // already gone
  EXPECT_EQ(r.subscription_count(), 0u);
}

TEST(Router, ExactAndPatternWithTheSamePrefixAreIndependent) {
  Router r;
  r.subscribe(1, "job");
  r.subscribe(2, "job*");
  EXPECT_EQ(subscribers_of(r, "job"), (Peers{1, 2}));
  EXPECT_EQ(subscribers_of(r, "jobs"), (Peers{2}));
  r.unsubscribe(1, "job");
  EXPECT_EQ(subscribers_of(r, "job"), (Peers{2}));
  r.unsubscribe(2, "job*");
  EXPECT_EQ(subscribers_of(r, "job"), Peers{});
}

TEST(Router, CheckSubscriptionRejectsEmptyTopicAndInnerStar) {
  EXPECT_EQ(Router::check_subscription("").code(), Errc::invalid_argument);
  EXPECT_EQ(Router::check_subscription("a*b").code(), Errc::invalid_argument);
  EXPECT_EQ(Router::check_subscription("*a").code(), Errc::invalid_argument);
  EXPECT_EQ(Router::check_subscription("**").code(), Errc::invalid_argument);
  EXPECT_EQ(Router::check_subscription("a**").code(), Errc::invalid_argument);
}

TEST(Router, CheckSubscriptionAcceptsTopicsAndTrailingStarPatterns) {
  EXPECT_TRUE(Router::check_subscription("a").ok());
  EXPECT_TRUE(Router::check_subscription("job:progress").ok());
  EXPECT_TRUE(Router::check_subscription("job:*").ok());
  EXPECT_TRUE(Router::check_subscription("*").ok());
}

TEST(Router, IsPatternMeansATrailingStar) {
  EXPECT_TRUE(Router::is_pattern("*"));
  EXPECT_TRUE(Router::is_pattern("job:*"));
  EXPECT_FALSE(Router::is_pattern("job:"));
  EXPECT_FALSE(Router::is_pattern(""));
}

TEST(Router, RegistersAHandlerForOnePeer) {
  Router r;
  EXPECT_FALSE(r.handler_of("fs:read").has_value());
  ASSERT_TRUE(r.register_handler(1, "fs:read").ok());
  EXPECT_EQ(r.handler_of("fs:read"), PeerId{1});
  EXPECT_EQ(r.handler_count(), 1u);
}

TEST(Router, SecondPeerGetsAlreadyRegistered) {
  Router r;
  ASSERT_TRUE(r.register_handler(1, "fs:read").ok());
  EXPECT_EQ(r.register_handler(2, "fs:read").code(), Errc::already_registered);
  EXPECT_EQ(r.handler_of("fs:read"), PeerId{1});
  EXPECT_EQ(r.handler_count(), 1u);
}

TEST(Router, SamePeerMayRegisterAgain) {
  Router r;
  ASSERT_TRUE(r.register_handler(1, "fs:read").ok());
  EXPECT_TRUE(r.register_handler(1, "fs:read").ok());
  EXPECT_EQ(r.handler_of("fs:read"), PeerId{1});
  EXPECT_EQ(r.handler_count(), 1u);
}

TEST(Router, RegisterRejectsAnEmptyName) {
  Router r;
  EXPECT_EQ(r.register_handler(1, "").code(), Errc::invalid_argument);
  EXPECT_EQ(r.handler_count(), 0u);
}

TEST(Router, UnregisterByNonOwnerIsIgnored) {
  Router r;
  ASSERT_TRUE(r.register_handler(1, "fs:read").ok());
  EXPECT_FALSE(r.unregister_handler(2, "fs:read"));
  EXPECT_EQ(r.handler_of("fs:read"), PeerId{1});
  EXPECT_FALSE(r.unregister_handler(1, "fs:write"));
  EXPECT_TRUE(r.unregister_handler(1, "fs:read"));
  EXPECT_FALSE(r.handler_of("fs:read").has_value());
  EXPECT_EQ(r.handler_count(), 0u);
  EXPECT_FALSE(r.unregister_handler(1, "fs:read"));
  // Freed names can be taken by another peer.
  EXPECT_TRUE(r.register_handler(2, "fs:read").ok());
  EXPECT_EQ(r.handler_of("fs:read"), PeerId{2});
}

TEST(Router, RemovePeerClearsItsSubscriptionsAndHandlers) {
  Router r;
  r.subscribe(1, "a");
  r.subscribe(1, "job:*");
  r.subscribe(1, "*");
  r.subscribe(2, "a");
  ASSERT_TRUE(r.register_handler(1, "fs:read").ok());
  ASSERT_TRUE(r.register_handler(1, "fs:write").ok());
  ASSERT_TRUE(r.register_handler(2, "app:version").ok());
  ASSERT_EQ(r.subscription_count(), 4u);
  ASSERT_EQ(r.handler_count(), 3u);

  r.remove_peer(1);
  EXPECT_EQ(r.subscriptions_of(1), 0u);
  EXPECT_EQ(r.subscription_count(), 1u);
  EXPECT_EQ(r.handler_count(), 1u);
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{2}));
  EXPECT_EQ(subscribers_of(r, "job:1"), Peers{});
  EXPECT_EQ(subscribers_of(r, "zzz"), Peers{});
  EXPECT_FALSE(r.handler_of("fs:read").has_value());
  EXPECT_FALSE(r.handler_of("fs:write").has_value());
  EXPECT_EQ(r.handler_of("app:version"), PeerId{2});
  EXPECT_TRUE(r.register_handler(3, "fs:read").ok());

  r.remove_peer(2);
  r.remove_peer(3);
  EXPECT_EQ(r.subscription_count(), 0u);
  EXPECT_EQ(r.handler_count(), 0u);
  EXPECT_EQ(subscribers_of(r, "a"), Peers{});
}

TEST(Router, RemovingAnUnknownPeerChangesNothing) {
  Router r;
  r.subscribe(1, "a");
  ASSERT_TRUE(r.register_handler(1, "h").ok());
  r.remove_peer(42);
  EXPECT_EQ(r.subscription_count(), 1u);
  EXPECT_EQ(r.handler_count(), 1u);
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{1}));
}

TEST(Router, ARemovedPeerCanSubscribeAfresh) {
  Router r;
  r.subscribe(1, "a");
  r.remove_peer(1);
  EXPECT_TRUE(r.subscribe(1, "a"));
  EXPECT_EQ(subscribers_of(r, "a"), (Peers{1}));
  EXPECT_EQ(r.subscription_count(), 1u);
}

}  // namespace
}  // namespace switchboard
