#include "transport/mpi/source.hpp"

#include <cstdlib>

#include "common/log.hpp"

namespace tandem::transport {

void MpiSource::submit(MPI_Request req, progress::Completion* c) noexcept {
  // From a thread that holds the poll lock (a completion callback, an executor starting a
  // call): straight into the polled state, no queue lock.
  if (engine_->polling_here()) {
    try {
      reqs_.push_back(req);
      comps_.push_back(c);
      engine_->added();
      return;
    } catch (...) {
      reqs_.resize(comps_.size());  // fall back to the queue
    }
  }
  {
    std::lock_guard<std::mutex> g(in_mu_);
    try {
      incoming_.push_back({req, c});
      queued_.store(true, std::memory_order_release);
    } catch (...) {
      // Out of memory for the queue itself: the request can be neither tracked nor
      // completed here (the caller may hold what its completion takes).
      log_raw("tandem: out of memory queueing an MPI request\n");
      std::abort();
    }
  }
  engine_->added();
}

void MpiSource::complete(progress::Completion* c, const MPI_Status& st, int error) noexcept {
  progress::Result r;
  r.error = error;
  if (error == MPI_SUCCESS) {
    int n = 0;
    if (PMPI_Get_count(&st, MPI_BYTE, &n) == MPI_SUCCESS && n != MPI_UNDEFINED && n > 0)
      r.bytes = static_cast<std::uint64_t>(n);
  }
  c->fn(c, r);
}

// After a failing MPI_Testsome (other than MPI_ERR_IN_STATUS): each request on its own,
// so that a broken one reports its error and the others go on.
int MpiSource::test_one_by_one(std::size_t n) noexcept {
  int k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    int flag = 0;
    MPI_Status st;
    st.MPI_ERROR = MPI_SUCCESS;
    int rc = PMPI_Test(&reqs_[i], &flag, &st);
    if (rc != MPI_SUCCESS || flag) {
      progress::Completion* c = comps_[i];
      comps_[i] = nullptr;
      complete(c, st, rc != MPI_SUCCESS ? rc : st.MPI_ERROR);
      ++k;
    }
  }
  return k;
}

int MpiSource::progress() noexcept {
  if (queued_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> g(in_mu_);
    queued_.store(false, std::memory_order_relaxed);
    if (!incoming_.empty()) {
      try {
        for (const Entry& e : incoming_) {
          reqs_.push_back(e.req);
          comps_.push_back(e.c);
        }
      } catch (...) {
        reqs_.resize(comps_.size());
        queued_.store(true, std::memory_order_relaxed);
        return 0;  // keep the rest queued; try again at the next poll
      }
      incoming_.clear();
    }
  }
  const std::size_t n = reqs_.size();
  if (n == 0) return 0;
  if (idx_.size() < n) {
    try {
      idx_.resize(n * 2);
      st_.resize(n * 2);
    } catch (...) {
      return 0;
    }
  }
  int outcount = 0;
  int rc = PMPI_Testsome(static_cast<int>(n), reqs_.data(), &outcount, idx_.data(), st_.data());
  int k = 0;
  if (rc == MPI_SUCCESS || rc == MPI_ERR_IN_STATUS) {
    if (outcount == MPI_UNDEFINED || outcount <= 0) return 0;
    // Completion callbacks may start new requests: they are appended after the n tested.
    for (int j = 0; j < outcount; ++j) {
      auto i = static_cast<std::size_t>(idx_[static_cast<std::size_t>(j)]);
      progress::Completion* c = comps_[i];
      comps_[i] = nullptr;
      // Without MPI_ERR_IN_STATUS the statuses' MPI_ERROR fields are not set.
      complete(c, st_[static_cast<std::size_t>(j)],
               rc == MPI_ERR_IN_STATUS ? st_[static_cast<std::size_t>(j)].MPI_ERROR : MPI_SUCCESS);
    }
    k = outcount;
  } else {
    if (!warned_) {
      warned_ = true;
      log_message(-1, "MPI_Testsome failed with error %d: testing tandem's requests one by one", rc);
    }
    k = test_one_by_one(n);
  }
  // Drop the completed ones, keeping the order of the rest (and of those started meanwhile).
  std::size_t w = 0;
  for (std::size_t i = 0; i < reqs_.size(); ++i) {
    if (!comps_[i]) continue;
    reqs_[w] = reqs_[i];
    comps_[w] = comps_[i];
    ++w;
  }
  reqs_.resize(w);
  comps_.resize(w);
  return k;
}

}  // namespace tandem::transport
