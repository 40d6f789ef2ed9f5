// Tests for core/block_pool.h (recycled bulk memory) and Buffer::reserve_pooled (core/bytes.h).
#include "block_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "bytes.h"

namespace switchboard {
namespace {

TEST(BlockPool, ANewBlockHoldsAtLeastWhatWasAskedAndIsWritable) {
  BlockPool pool;
  BlockPool::Block b = pool.take(100'000, 100'000);
  ASSERT_NE(b.data, nullptr);
  EXPECT_GE(b.mapped, 100'000u);
  std::memset(b.data, 0x5a, b.mapped);  // every byte is ours (ASan would report otherwise)
  EXPECT_EQ(b.data[b.mapped - 1], 0x5a);
  pool.give(b);
  EXPECT_EQ(pool.idle_blocks(), 1u);
  EXPECT_EQ(pool.idle_bytes(), b.mapped);
}

TEST(BlockPool, AGivenBlockIsTakenAgainWhenItFits) {
  BlockPool pool;
  BlockPool::Block first = pool.take(200'000, 200'000);
  std::uint8_t* where = first.data;
  pool.give(first);
  BlockPool::Block again = pool.take(150'000, 300'000);
  EXPECT_EQ(again.data, where);
  EXPECT_EQ(again.mapped, first.mapped);
  EXPECT_EQ(pool.idle_blocks(), 0u);
  std::memset(again.data, 1, again.mapped);  // unpoisoned again under ASan
  pool.give(again);
}

TEST(BlockPool, ABlockOutsideTheAskedRangeIsNotReused) {
  BlockPool pool;
  BlockPool::Block big = pool.take(1u << 20, 1u << 20);
  pool.give(big);
  // Too big for a caller that bounds what it reserves (the frame decoder), and too small below.
  BlockPool::Block small = pool.take(100'000, 200'000);
  EXPECT_NE(small.data, big.data);
  BlockPool::Block bigger = pool.take(2u << 20, 4u << 20);
  EXPECT_NE(bigger.data, big.data);
  EXPECT_EQ(pool.idle_blocks(), 1u);
  pool.give(small);
  pool.give(bigger);
}

TEST(BlockPool, TheSmallestFittingBlockIsTaken) {
  BlockPool pool;
  BlockPool::Block large = pool.take(800'000, 800'000);
  BlockPool::Block medium = pool.take(300'000, 300'000);
  pool.give(large);
  pool.give(medium);
  BlockPool::Block got = pool.take(250'000, 1'000'000);
  EXPECT_EQ(got.data, medium.data);
  pool.give(got);
}

TEST(BlockPool, IdleMemoryIsBounded) {
  BlockPool pool;
  const std::size_t block = 8u << 20;
  std::vector<BlockPool::Block> taken;
  for (std::size_t i = 0; i < BlockPool::kMaxIdleBytes / block + 4; ++i) {
    taken.push_back(pool.take(block, block));
  }
  for (const BlockPool::Block& b : taken) pool.give(b);
  EXPECT_LE(pool.idle_bytes(), BlockPool::kMaxIdleBytes);
  EXPECT_GT(pool.idle_bytes(), 0u);
  // The most recently given blocks are the ones kept.
  BlockPool::Block last = pool.take(block, block);
  EXPECT_EQ(last.data, taken.back().data);
  pool.give(last);
}

TEST(BlockPool, ABlockLargerThanTheIdleBoundIsUnmappedNotKept) {
  BlockPool pool;
  BlockPool::Block huge = pool.take(BlockPool::kMaxIdleBytes + 1, BlockPool::kMaxIdleBytes + 1);
  pool.give(huge);
  EXPECT_EQ(pool.idle_bytes(), 0u);
}

TEST(BlockPool, BlocksOverTheResidentBoundAreStillReusableAndWritable) {
  BlockPool pool;
  const std::size_t block = 4u << 20;
  std::vector<BlockPool::Block> taken;
  for (std::size_t i = 0; i < BlockPool::kMaxResidentIdleBytes / block + 3; ++i) {
    taken.push_back(pool.take(block, block));
    std::memset(taken.back().data, 7, block);
  }
  for (const BlockPool::Block& b : taken) pool.give(b);
  // The oldest were handed back to the OS page by page; taking one refaults zeroed pages.
  BlockPool::Block first = pool.take(block, block);
  std::memset(first.data, 9, block);
  EXPECT_EQ(first.data[block - 1], 9);
  pool.give(first);
}

TEST(BufferPooled, KeepsItsBytesWhenMovedIntoAPooledBlock) {
  Buffer b;
  b.append("header", 6);
  b.reserve_pooled(200'000, 400'000);
  EXPECT_TRUE(b.pooled());
  EXPECT_GE(b.capacity(), 200'000u);
  EXPECT_LE(b.capacity(), 400'000u);
  ASSERT_EQ(b.size(), 6u);
  EXPECT_EQ(std::memcmp(b.data(), "header", 6), 0);
  std::vector<std::uint8_t> more(300'000, 0xcd);
  b.append(more.data(), more.size());  // grows into another pooled block
  EXPECT_TRUE(b.pooled());
  ASSERT_EQ(b.size(), 6u + more.size());
  EXPECT_EQ(std::memcmp(b.data(), "header", 6), 0);
  EXPECT_EQ(b.data()[b.size() - 1], 0xcd);
}

TEST(BufferPooled, ItsBlockReturnsToTheSharedPoolWhenTheLastOwnerGoes) {
  BlockPool& pool = BlockPool::shared();
  std::uint8_t* where = nullptr;
  std::size_t mapped_at_least = 3u << 20;
  {
    auto owner = std::make_shared<Buffer>();
    owner->reserve_pooled(mapped_at_least, mapped_at_least);
    owner->resize(mapped_at_least);
    where = owner->data();
    Slice view(owner, owner->data() + 10, 100);
    owner.reset();
    EXPECT_EQ(view.data, where + 10);  // the slice alone keeps the block
  }
  BlockPool::Block again = pool.take(mapped_at_least, mapped_at_least + (1u << 20));
  EXPECT_EQ(again.data, where);
  pool.give(again);
}

}  // namespace
}  // namespace switchboard
