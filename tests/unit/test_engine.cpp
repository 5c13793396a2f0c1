#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "progress/engine.hpp"

using namespace tandem::progress;

namespace {

// Request h completes once it has been tested h % 7 + 1 times.
class FakePoller : public Poller {
 public:
  int test_some(int n, std::uint64_t* reqs, int* done, unsigned char* statuses) override {
    std::lock_guard<std::mutex> g(mu);
    int k = 0;
    for (int i = 0; i < n; ++i) {
      if (++tests[reqs[i]] >= reqs[i] % 7 + 1) {
        done[k++] = i;
        statuses[static_cast<std::size_t>(i) * kStatusBytes] = static_cast<unsigned char>(reqs[i]);
      }
    }
    concurrent_max = std::max(concurrent_max, ++concurrent);
    --concurrent;
    return k;
  }
  std::mutex mu;
  std::map<std::uint64_t, int> tests;
  int concurrent = 0, concurrent_max = 0;
};

struct Counter {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::multiset<std::uint64_t> seen;
};

void on_done(void* ctx, const void* status) {
  auto* c = static_cast<Counter*>(ctx);
  std::lock_guard<std::mutex> g(c->mu);
  c->seen.insert(*static_cast<const unsigned char*>(status));
  c->calls++;
}

}  // namespace

TEST(Engine, CompletesEveryRequestOnceAndRunsItsCallback) {
  FakePoller poller;
  Engine engine;
  engine.start(&poller, {});
  Counter c;
  for (std::uint64_t r = 1; r <= 200; ++r) engine.submit(r, on_done, &c);
  engine.drain();
  EXPECT_EQ(c.calls.load(), 200);
  EXPECT_EQ(engine.outstanding(), 0u);
  for (std::uint64_t r = 1; r <= 200; ++r) EXPECT_EQ(c.seen.count(r), 1u) << r;
  engine.stop();
}

TEST(Engine, ThreadsThatHelpNeverPollConcurrently) {
  FakePoller poller;
  Engine engine;
  engine.start(&poller, {0, 5});
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (std::uint64_t r = 0; r < 100; ++r) {
        engine.submit(1000 * (t + 1) + r, on_done, &c);
        engine.help();
      }
    });
  for (auto& th : threads) th.join();
  engine.drain();
  EXPECT_EQ(c.calls.load(), 400);
  EXPECT_EQ(poller.concurrent_max, 1);
  engine.stop();
}

TEST(Engine, IdleThreadSleepsWithoutPolling) {
  FakePoller poller;
  Engine engine;
  engine.start(&poller, {});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::lock_guard<std::mutex> g(poller.mu);
    EXPECT_TRUE(poller.tests.empty());  // nothing outstanding: never called the transport
  }
  engine.stop();
}
