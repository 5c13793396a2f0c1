// The protection layer in one process: what a thread sees when it touches buffers of
// deferred operations. The transport is played by the test (it writes the bounce buffer).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/stats.hpp"
#include "common/thread_flags.hpp"
#include "protect/tracker.hpp"
#include "protect/vma.hpp"

using tandem::protect::Tracker;
using tandem::protect::Use;
using namespace std::chrono_literals;

namespace {

const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

// Pages of their own, between two inaccessible guard pages so that the kernel cannot merge
// them with a neighbouring mapping (as an allocator's block mapped for itself).
struct Mapping {
  explicit Mapping(std::size_t pages) : len(pages * kPage) {
    auto* base = static_cast<unsigned char*>(
        mmap(nullptr, len + 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    p = base + kPage;
    mprotect(p, len, PROT_READ | PROT_WRITE);
    std::memset(p, 0xAA, len);
  }
  ~Mapping() { munmap(p - kPage, len + 2 * kPage); }
  unsigned char* p;
  std::size_t len;
};

class TrackerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* err = nullptr;
    auto o = tandem::protect::tracker_options(tandem::Config{});
    o.max_ops = 256;
    ASSERT_TRUE(Tracker::instance().init(o, &err)) << err;
  }
  // The preload library keeps the mapping cache current by interposing mmap/munmap;
  // this test maps and unmaps memory directly, so it starts each case afresh.
  void SetUp() override { tandem::protect::vma_cache().invalidate_all(); }
  Tracker& t = Tracker::instance();
};

}  // namespace

TEST_F(TrackerTest, WriteToSendBufferWaitsForCompletionButReadsDoNot) {
  Mapping m(4);
  unsigned char* buf = m.p + 32;  // an allocator-style block: a small header, then the buffer to the end
  int s = t.begin_send(buf, 4 * kPage - 32);
  ASSERT_GE(s, 0);
  std::atomic<bool> read_done{false}, write_done{false};
  std::thread reader([&] {
    volatile unsigned char v = buf[10];
    (void)v;
    read_done = true;
  });
  std::thread writer([&] {
    buf[20] = 1;
    write_done = true;
  });
  reader.join();
  EXPECT_TRUE(read_done);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(write_done) << "a write to a buffer being sent went through";
  EXPECT_EQ(buf[20], 0xAA);
  t.end_send(s);
  writer.join();
  EXPECT_TRUE(write_done);
  EXPECT_EQ(buf[20], 1);
  EXPECT_FALSE(t.any_active());
}

TEST_F(TrackerTest, ReceiveBufferShowsOnlyTheArrivedMessageAndKeepsItsNeighbours) {
  Mapping m(6);
  const std::size_t off = 48, n = 6 * kPage - 48;
  void* dst = nullptr;
  int s = t.begin_recv(m.p + off, n, &dst);
  ASSERT_GE(s, 0);
  ASSERT_NE(dst, m.p + off);
  std::atomic<int> seen{-1};
  std::thread reader([&] { seen = m.p[off + 5]; });
  // The transport writes the message into the bounce buffer.
  for (std::size_t i = 0; i < n; ++i) static_cast<unsigned char*>(dst)[i] = static_cast<unsigned char>(i * 13 + 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(seen.load(), -1) << "the program read a receive buffer before the message arrived";
  t.end_recv(s, n);
  reader.join();
  EXPECT_EQ(seen.load(), static_cast<unsigned char>(5 * 13 + 1));
  for (std::size_t i = 0; i < m.len; ++i) {
    bool in = i >= off && i < off + n;
    unsigned char want = in ? static_cast<unsigned char>((i - off) * 13 + 1) : 0xAA;
    ASSERT_EQ(m.p[i], want) << "byte " << i;
  }
}

TEST_F(TrackerTest, ShortMessageLeavesTheRestOfTheBufferUnchanged) {
  for (std::size_t received : {std::size_t(100), 5 * kPage}) {
    Mapping m(8);
    const std::size_t off = 64, n = 8 * kPage - 64;
    void* dst = nullptr;
    int s = t.begin_recv(m.p + off, n, &dst);
    ASSERT_GE(s, 0);
    std::memset(dst, 0x11, received);
    std::memset(static_cast<unsigned char*>(dst) + received, 0x99, n - received);  // garbage past the message
    t.end_recv(s, received);
    for (std::size_t i = 0; i < m.len; ++i) {
      unsigned char want = (i >= off && i < off + received) ? 0x11 : 0xAA;
      ASSERT_EQ(m.p[i], want) << "received " << received << " byte " << i;
    }
  }
}

TEST_F(TrackerTest, NeighbourWrittenDuringReceiveKeepsTheNewValue) {
  Mapping m(3);
  const std::size_t off = 40, n = 3 * kPage - 40;  // the block's header shares the first page
  void* dst = nullptr;
  int s = t.begin_recv(m.p + off, n, &dst);
  ASSERT_GE(s, 0);
  std::atomic<bool> done{false};
  std::thread neighbour([&] {
    m.p[10] = 0x42;  // same page as the buffer, outside it
    done = true;
  });
  std::memset(dst, 0x33, n);
  neighbour.join();  // waits, at most a bounded time, never forever
  EXPECT_TRUE(done);
  t.end_recv(s, n);
  EXPECT_EQ(m.p[10], 0x42);
  EXPECT_EQ(m.p[off], 0x33);
  EXPECT_EQ(m.p[off + n - 1], 0x33);
}

TEST_F(TrackerTest, InternalThreadsStepThroughNeighbourDataWithoutWaiting) {
  Mapping m(2);
  unsigned char* buf = m.p + 48;
  int s = t.begin_send(buf, 2 * kPage - 48);
  ASSERT_GE(s, 0);
  auto before = tandem::stats().stepped.load();
  std::thread internal([&] {
    tandem::InternalScope scope;
    m.p[8] = 7;  // e.g. the MPI library's own data sharing the page
  });
  internal.join();  // must not wait for the send
  EXPECT_EQ(m.p[8], 7);
  EXPECT_GT(tandem::stats().stepped.load(), before);
  // The buffer itself is still protected afterwards.
  std::atomic<bool> wrote{false};
  std::thread writer([&] {
    buf[0] = 9;
    wrote = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(wrote);
  t.end_send(s);
  writer.join();
  EXPECT_EQ(buf[0], 9);
}

TEST_F(TrackerTest, SeveralSendsOfOneBufferKeepItReadOnlyUntilTheLast) {
  Mapping m(3);
  int a = t.begin_send(m.p + 16, 3 * kPage - 16);
  int b = t.begin_send(m.p + 16, 3 * kPage - 16);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::atomic<bool> wrote{false};
  std::thread writer([&] {
    m.p[20] = 1;
    wrote = true;
  });
  t.end_send(a);
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(wrote);
  t.end_send(b);
  writer.join();
  EXPECT_TRUE(wrote);
}

TEST_F(TrackerTest, ConflictsFollowTheUse) {
  Mapping m(2);
  int s = t.begin_send(m.p, kPage);
  ASSERT_GE(s, 0);
  EXPECT_FALSE(t.wait_conflicts(m.p + 100, 10, Use::Read));  // reading a buffer being sent is fine
  std::atomic<bool> waited{false};
  std::thread w([&] { waited = t.wait_conflicts(m.p + 100, 10, Use::Write); });
  std::this_thread::sleep_for(30ms);
  t.end_send(s);
  w.join();
  EXPECT_TRUE(waited);
}

TEST_F(TrackerTest, PagesSharedWithOtherDataAreNeverProtected) {
  Mapping m(4);
  void* dst = nullptr;
  // In the middle of a mapping: its first and last pages hold other data.
  EXPECT_LT(t.begin_send(m.p + 1000, 2 * kPage), 0);
  EXPECT_LT(t.begin_recv(m.p + 1000, 2 * kPage, &dst), 0);
  // Page aligned at both ends: nothing else on its pages.
  int s = t.begin_send(m.p + kPage, 2 * kPage);
  EXPECT_GE(s, 0);
  if (s >= 0) t.end_send(s);
  // A heap block shares its pages with other blocks.
  void* heap = std::malloc(3000);
  EXPECT_LT(t.begin_send(heap, 3000), 0);
  std::free(heap);
}

TEST_F(TrackerTest, UnprotectableMemoryIsRefused) {
  void* ro = mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_LT(t.begin_send(ro, 100), 0);
  void* dst = nullptr;
  EXPECT_LT(t.begin_recv(ro, 100, &dst), 0);
  void* shared = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  EXPECT_LT(t.begin_recv(shared, 100, &dst), 0);  // page swap needs private memory
  int s = t.begin_send(shared, 100);              // a read-only window works on shared memory
  EXPECT_GE(s, 0);
  if (s >= 0) t.end_send(s);
  munmap(ro, kPage);
  munmap(shared, kPage);
}

namespace {
std::atomic<int> g_handler_calls{0};
void* g_fault_page = nullptr;
void program_handler(int, siginfo_t* info, void*) {
  auto page = reinterpret_cast<std::uintptr_t>(info->si_addr) & ~(kPage - 1);
  if (reinterpret_cast<void*>(page) == g_fault_page) {
    ++g_handler_calls;
    mprotect(g_fault_page, kPage, PROT_READ | PROT_WRITE);
  }
}
}  // namespace

TEST_F(TrackerTest, FaultsOutsideTrackedBuffersReachTheProgramsHandler) {
  // What the preload library's sigaction does when the program installs a handler.
  struct sigaction sa{};
  sa.sa_sigaction = program_handler;
  sa.sa_flags = SA_SIGINFO;
  struct sigaction saved = *t.chained(SIGSEGV);
  *t.chained(SIGSEGV) = sa;
  g_fault_page = mmap(nullptr, kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  Mapping m(2);
  int s = t.begin_send(m.p, 2 * kPage);  // tandem protection active at the same time
  ASSERT_GE(s, 0);
  static_cast<volatile char*>(g_fault_page)[3] = 1;
  EXPECT_EQ(g_handler_calls.load(), 1);
  t.end_send(s);
  *t.chained(SIGSEGV) = saved;
  munmap(g_fault_page, kPage);
}

TEST_F(TrackerTest, GenuineFaultStillKillsWithSigsegv) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        void* p = mmap(nullptr, kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        static_cast<volatile char*>(p)[0] = 1;
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

TEST_F(TrackerTest, DeferralPaysOffWhenTheProgramRunsLongerThanItCosts) {
  // With the default costs (TANDEM_DEFER_COST_US=30, _PS_PER_BYTE=61).
  EXPECT_TRUE(t.paid_off(1000, 0, 1 << 20));              // never waited for
  EXPECT_FALSE(t.paid_off(1000, 1002, 4096));             // waited for at once
  EXPECT_TRUE(t.paid_off(1000, 1000 + 400, 4096));        // 400 us of computation first
  EXPECT_FALSE(t.paid_off(1000, 1000 + 400, 64 << 20));   // not enough for 64 MB of protection
  EXPECT_TRUE(t.paid_off(1000, 1000 + 20000, 64 << 20));
}

TEST_F(TrackerTest, AdviceStopsDeferringBuffersThatDoNotPayAndRetriesLater) {
  const std::uintptr_t buf = 0x7000'1234'5670, other = 0x7000'2234'5670;  // only keys here
  EXPECT_TRUE(t.advise(reinterpret_cast<void*>(buf), 4096));
  t.learn(buf, false);
  EXPECT_TRUE(t.advise(reinterpret_cast<void*>(buf), 4096));  // one bad outcome is not enough
  t.learn(buf, false);
  int yes = 0;
  for (int i = 0; i < 32; ++i) yes += t.advise(reinterpret_cast<void*>(buf), 4096);
  EXPECT_EQ(yes, 2) << "a buffer whose deferrals do not pay should be retried every 16th time only";
  for (int i = 0; i < 4; ++i) t.learn(buf, true);  // the program changed: retries paid off
  EXPECT_TRUE(t.advise(reinterpret_cast<void*>(buf), 4096));
  for (int i = 0; i < 5; ++i) t.learn(other, true);
  EXPECT_TRUE(t.advise(reinterpret_cast<void*>(other), 100));
}
