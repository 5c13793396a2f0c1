#include "coll_harness.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "coll/executor.hpp"

namespace tandem::test {

std::vector<int> run_collective(const std::vector<coll::Schedule>& schedules, std::vector<RankMemory>& mem,
                                const coll::Reducer& red, const RunOptions& o) {
  const int p = static_cast<int>(schedules.size());
  if (static_cast<int>(mem.size()) != p) throw std::invalid_argument("one RankMemory per schedule");
  transport::InprocWorld world(p, o.inproc);
  std::vector<std::unique_ptr<progress::Engine>> engines;
  const progress::Mode mode = o.threads ? o.mode : progress::Mode::Poll;
  for (int r = 0; r < p; ++r) {
    engines.push_back(std::make_unique<progress::Engine>());
    world.endpoint(r).attach(engines.back().get());
    engines.back()->start(progress::engine_options(Config{}, mode));
  }
  std::vector<std::unique_ptr<coll::Execution>> ex;
  for (int r = 0; r < p; ++r) {
    const coll::Schedule& s = schedules[static_cast<std::size_t>(r)];
    if (s.rank != r || s.size != p) throw std::invalid_argument("schedule " + std::to_string(r) + " is for another rank");
    auto& m = mem[static_cast<std::size_t>(r)];
    coll::Buffers b{m.send.empty() ? nullptr : m.send.data(), m.recv.empty() ? nullptr : m.recv.data()};
    ex.push_back(std::make_unique<coll::Execution>(std::make_shared<const coll::Schedule>(s), b, red, &world.endpoint(r),
                                                   /*seq=*/7));
  }
  std::vector<int> errors(static_cast<std::size_t>(p), 0);
  if (!o.threads) {
    for (auto& e : ex) e->start();
    for (;;) {
      bool all = true;
      int k = 0;
      for (int r = 0; r < p; ++r) {
        int n = engines[static_cast<std::size_t>(r)]->help();
        if (n > 0) k += n;
        all = all && ex[static_cast<std::size_t>(r)]->done();
      }
      if (all) break;
      if (k == 0) {
        std::string what = "deadlock: no completion possible; unmatched:\n" + world.unmatched();
        // The executions wait for their operations when destroyed, and the engines for
        // their outstanding work: neither will ever come. Leave them (a failing test).
        for (auto& e : ex) e.release();
        for (auto& e : engines) e.release();
        throw std::runtime_error(what);
      }
    }
  } else {
    std::mutex mu;
    std::condition_variable cv;
    int finished = 0;
    std::vector<std::thread> threads;
    for (int r = 0; r < p; ++r)
      threads.emplace_back([&, r] {
        auto& e = *ex[static_cast<std::size_t>(r)];
        e.start();
        e.wait();
        std::lock_guard<std::mutex> g(mu);
        ++finished;
        cv.notify_all();
      });
    {
      std::unique_lock<std::mutex> g(mu);
      if (!cv.wait_for(g, std::chrono::seconds(o.timeout_s), [&] { return finished == p; })) {
        std::fprintf(stderr, "collective hangs after %u s (mode %s); unmatched:\n%s", o.timeout_s,
                     progress::mode_name(o.mode), world.unmatched().c_str());
        std::fflush(stderr);
        std::_Exit(3);  // the rank threads cannot be stopped: fail the whole test binary
      }
    }
    for (auto& t : threads) t.join();
  }
  for (int r = 0; r < p; ++r) errors[static_cast<std::size_t>(r)] = ex[static_cast<std::size_t>(r)]->error();
  ex.clear();
  for (auto& e : engines) e->stop();
  return errors;
}

}  // namespace tandem::test
