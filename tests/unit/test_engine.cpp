// The progress engine over sources of its own making: every operation completes once, in
// every mode; one thread polls at a time; the idle thread does not poll; Block mode sleeps
// on the sources' event descriptors.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "progress/completion.hpp"
#include "progress/engine.hpp"

using namespace tandem::progress;

namespace {

struct Op : Completion {
  std::uint64_t id = 0;
};

// Operation id completes once it has been polled id % 7 + 1 times; its result's byte count
// is its id.
class FakeSource : public Source {
 public:
  explicit FakeSource(Engine* e) : engine_(e) {}
  void submit(Op* op) {
    {
      std::lock_guard<std::mutex> g(mu_);
      incoming_.push_back(op);
    }
    engine_->added();
  }
  int progress() noexcept override {
    concurrent_max = std::max(concurrent_max, ++concurrent);
    ++polls;
    {
      std::lock_guard<std::mutex> g(mu_);
      active_.insert(active_.end(), incoming_.begin(), incoming_.end());
      incoming_.clear();
    }
    int k = 0;
    std::vector<Op*> rest;
    for (Op* op : active_) {
      if (++tests_[op] >= op->id % 7 + 1) {
        op->fn(op, Result{0, op->id});
        ++k;
      } else {
        rest.push_back(op);
      }
    }
    active_.swap(rest);
    --concurrent;
    return k;
  }
  std::atomic<int> polls{0};
  int concurrent = 0, concurrent_max = 0;

 private:
  Engine* engine_;
  std::mutex mu_;
  std::vector<Op*> incoming_, active_;
  std::map<Op*, std::uint64_t> tests_;
};

struct Counter {
  std::mutex mu;
  std::multiset<std::uint64_t> seen;
  std::atomic<int> calls{0};
};
Counter* g_counter = nullptr;
void on_done(Completion* c, const Result& r) {
  std::lock_guard<std::mutex> g(g_counter->mu);
  g_counter->seen.insert(r.bytes);
  EXPECT_EQ(static_cast<Op*>(c)->id, r.bytes);
  g_counter->calls++;
}

EngineOptions opts(Mode m) { return engine_options(tandem::Config{}, m); }

class EngineModes : public ::testing::TestWithParam<Mode> {};

}  // namespace

TEST_P(EngineModes, CompletesEveryOperationOnceAndRunsItsCallback) {
  Engine engine;
  FakeSource src(&engine);
  engine.add_source(&src);
  engine.start(opts(GetParam()));
  Counter c;
  g_counter = &c;
  std::vector<Op> ops(200);
  for (std::uint64_t i = 0; i < ops.size(); ++i) {
    ops[i].id = i + 1;
    ops[i].fn = on_done;
    src.submit(&ops[i]);
  }
  engine.drain();
  EXPECT_EQ(c.calls.load(), 200);
  EXPECT_EQ(engine.outstanding(), 0u);
  for (std::uint64_t r = 1; r <= 200; ++r) EXPECT_EQ(c.seen.count(r), 1u) << r;
  engine.stop();
}

TEST_P(EngineModes, WaitReturnsOnceItsConditionHolds) {
  Engine engine;
  FakeSource src(&engine);
  engine.add_source(&src);
  engine.start(opts(GetParam()));
  Counter c;
  g_counter = &c;
  Op op;
  op.id = 6;  // seven polls
  op.fn = on_done;
  src.submit(&op);
  engine.wait([](const void* cnt) { return static_cast<const Counter*>(cnt)->calls.load() == 1; }, &c);
  EXPECT_EQ(c.calls.load(), 1);
  engine.stop();
}

INSTANTIATE_TEST_SUITE_P(All, EngineModes, ::testing::Values(Mode::Thread, Mode::Poll, Mode::Block),
                         [](const ::testing::TestParamInfo<Mode>& i) { return std::string(mode_name(i.param)); });

TEST(Engine, ThreadsThatHelpNeverPollConcurrently) {
  Engine engine;
  FakeSource src(&engine);
  engine.add_source(&src);
  auto o = opts(Mode::Thread);
  o.spin_us = 0;
  o.sleep_max_us = 5;
  engine.start(o);
  Counter c;
  g_counter = &c;
  std::vector<Op> ops(400);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (std::uint64_t r = 0; r < 100; ++r) {
        Op& op = ops[static_cast<std::size_t>(t) * 100 + r];
        op.id = 1000 * static_cast<std::uint64_t>(t + 1) + r;
        op.fn = on_done;
        src.submit(&op);
        engine.help();
      }
    });
  for (auto& th : threads) th.join();
  engine.drain();
  EXPECT_EQ(c.calls.load(), 400);
  EXPECT_EQ(src.concurrent_max, 1);
  engine.stop();
}

TEST(Engine, IdleThreadSleepsWithoutPolling) {
  Engine engine;
  FakeSource src(&engine);
  engine.add_source(&src);
  engine.start(opts(Mode::Thread));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.polls.load(), 0);  // nothing outstanding: never called the source
  engine.stop();
}

namespace {
// One operation that completes when its eventfd has been written (by another thread).
class EventSource : public Source {
 public:
  explicit EventSource(Engine* e) : engine_(e), fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~EventSource() override { ::close(fd_); }
  void submit(Op* op) {
    op_ = op;
    engine_->added();
  }
  void fire() {
    std::uint64_t one = 1;
    ssize_t w = ::write(fd_, &one, sizeof one);
    (void)w;
  }
  int progress() noexcept override {
    ++polls;
    std::uint64_t v = 0;
    if (::read(fd_, &v, sizeof v) != static_cast<ssize_t>(sizeof v) || !op_) return 0;
    Op* op = op_;
    op_ = nullptr;
    op->fn(op, Result{});
    return 1;
  }
  int event_fd() const noexcept override { return fd_; }
  bool arm() noexcept override { return true; }
  std::atomic<int> polls{0};

 private:
  Engine* engine_;
  int fd_;
  Op* op_ = nullptr;
};
void mark(Completion* c, const Result&) { static_cast<Op*>(c)->id = 1; }
}  // namespace

// In Block mode a waiter sleeps on the descriptor until the event comes: it polls a few
// times (its sleep is bounded by TANDEM_PROGRESS_SLEEP_US, 1 s here), not in a loop.
TEST(Engine, BlockModeSleepsOnTheEventDescriptor) {
  Engine engine;
  EventSource src(&engine);
  engine.add_source(&src);
  auto o = opts(Mode::Block);
  o.sleep_max_us = 1000000;
  engine.start(o);
  Op op;
  op.fn = mark;
  src.submit(&op);
  std::thread firer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    src.fire();
  });
  engine.wait([](const void* p) { return static_cast<const Op*>(p)->id == 1; }, &op);
  firer.join();
  EXPECT_EQ(op.id, 1u);
  EXPECT_LE(src.polls.load(), 10) << "the waiter polled instead of sleeping on the event descriptor";
  engine.stop();
}
