#include "transport/mpi/source.hpp"

#include "common/log.hpp"

namespace tandem::transport {

void MpiSource::submit(MPI_Request req, progress::Completion* c) noexcept {
  {
    std::lock_guard<std::mutex> g(in_mu_);
    try {
      incoming_.push_back({req, c});
    } catch (...) {
      // Out of memory for the queue itself (pages for 4096 entries at a time): complete
      // the request here rather than lose it.
      MPI_Status st;
      PMPI_Wait(&req, &st);
      progress::Result r;
      r.error = st.MPI_ERROR == MPI_SUCCESS ? 0 : st.MPI_ERROR;
      int n = 0;
      if (PMPI_Get_count(&st, MPI_BYTE, &n) == MPI_SUCCESS && n != MPI_UNDEFINED && n > 0)
        r.bytes = static_cast<std::uint64_t>(n);
      c->fn(c, r);
      return;
    }
  }
  engine_->added();
}

void MpiSource::complete(std::size_t i, const MPI_Status& st, int error) noexcept {
  progress::Result r;
  r.error = error;
  if (error == MPI_SUCCESS) {
    int n = 0;
    if (PMPI_Get_count(&st, MPI_BYTE, &n) == MPI_SUCCESS && n != MPI_UNDEFINED && n > 0)
      r.bytes = static_cast<std::uint64_t>(n);
  }
  progress::Completion* c = comps_[i];
  c->fn(c, r);
}

// After a failing MPI_Testsome (other than MPI_ERR_IN_STATUS): each request on its own,
// so that a broken one reports its error and the others go on.
int MpiSource::test_one_by_one() noexcept {
  int k = 0;
  for (std::size_t i = 0; i < reqs_.size(); ++i) {
    int flag = 0;
    MPI_Status st;
    st.MPI_ERROR = MPI_SUCCESS;
    int rc = PMPI_Test(&reqs_[i], &flag, &st);
    if (rc != MPI_SUCCESS || flag) {
      done_[i] = 1;
      complete(i, st, rc != MPI_SUCCESS ? rc : st.MPI_ERROR);
      ++k;
    }
  }
  return k;
}

int MpiSource::progress() noexcept {
  {
    std::lock_guard<std::mutex> g(in_mu_);
    if (!incoming_.empty()) {
      try {
        for (const Entry& e : incoming_) {
          reqs_.push_back(e.req);
          comps_.push_back(e.c);
        }
      } catch (...) {
        reqs_.resize(comps_.size());
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
      done_.resize(n * 2);
    } catch (...) {
      return 0;
    }
  }
  int outcount = 0;
  int rc = PMPI_Testsome(static_cast<int>(n), reqs_.data(), &outcount, idx_.data(), st_.data());
  int k = 0;
  for (std::size_t i = 0; i < n; ++i) done_[i] = 0;
  if (rc == MPI_SUCCESS || rc == MPI_ERR_IN_STATUS) {
    if (outcount == MPI_UNDEFINED || outcount <= 0) return 0;
    for (int j = 0; j < outcount; ++j) {
      auto i = static_cast<std::size_t>(idx_[static_cast<std::size_t>(j)]);
      done_[i] = 1;
      // Without MPI_ERR_IN_STATUS the statuses' MPI_ERROR fields are not set.
      complete(i, st_[static_cast<std::size_t>(j)], rc == MPI_ERR_IN_STATUS ? st_[static_cast<std::size_t>(j)].MPI_ERROR
                                                                            : MPI_SUCCESS);
    }
    k = outcount;
  } else {
    if (!warned_) {
      warned_ = true;
      log_message(-1, "MPI_Testsome failed with error %d: testing tandem's requests one by one", rc);
    }
    k = test_one_by_one();
  }
  // Drop the completed ones, keeping the order of the rest.
  std::size_t w = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (done_[i]) continue;
    reqs_[w] = reqs_[i];
    comps_[w] = comps_[i];
    ++w;
  }
  reqs_.resize(w);
  comps_.resize(w);
  return k;
}

}  // namespace tandem::transport
