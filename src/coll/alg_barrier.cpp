// Barrier algorithms: zero-byte messages only. A rank may leave once every rank has
// entered: each rank's steps depend, through the messages, on a step of every other rank.
#include "coll/building.hpp"

namespace tandem::coll {

namespace {
void add_deps(Builder& b, StepId s, const std::vector<StepId>& deps) {
  for (StepId d : deps) b.add_dep(s, d);
}

const Loc kNowhere = at(Buf::Recv, 0);

StepId snd(Builder& b, int peer, std::initializer_list<StepId> deps = {}) { return b.send(peer, kNowhere, 0, deps); }
StepId rcv(Builder& b, int peer, std::initializer_list<StepId> deps = {}) { return b.recv(peer, kNowhere, 0, deps); }

// Everyone tells rank 0, which then releases everyone.
Schedule linear(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const int p = a.size, r = a.rank;
  if (p == 1) return std::move(b).finish();
  if (r == 0) {
    std::vector<StepId> in;
    for (int q = 1; q < p; ++q) in.push_back(rcv(b, q));
    StepId all = b.nop(in);
    for (int q = 1; q < p; ++q) snd(b, q, {all});
  } else {
    snd(b, 0);
    rcv(b, 0);
  }
  return std::move(b).finish();
}

// A token goes twice around the ring from rank 0: after the first round everyone has
// entered, the second tells everyone so.
Schedule double_ring(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const int p = a.size, r = a.rank;
  if (p == 1) return std::move(b).finish();
  const int left = (r - 1 + p) % p, right = (r + 1) % p;
  if (r == 0) {
    StepId s1 = snd(b, right);
    StepId r1 = rcv(b, left);
    StepId s2 = snd(b, right, {r1, s1});
    rcv(b, left, {r1});
    (void)s2;
  } else {
    StepId r1 = rcv(b, left);
    StepId s1 = snd(b, right, {r1});
    StepId r2 = rcv(b, left);
    snd(b, right, {r2, s1});
  }
  return std::move(b).finish();
}

// Round k = 1, 2, 4, ...: send to r+k, receive from r-k; a round's send waits for all
// earlier receives.
Schedule dissemination(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const int p = a.size, r = a.rank;
  std::vector<StepId> got;
  for (int k = 1; k < p; k *= 2) {
    StepId s = snd(b, (r + k) % p);
    add_deps(b, s, got);
    got.push_back(rcv(b, (r - k + p) % p));
  }
  return std::move(b).finish();
}

// Tournament: at distance k = 1, 2, 4, ... the rank r with r mod 2k == k loses to r-k
// (tells it, then waits to be woken), the winner goes on; rank 0, the champion, then wakes
// its losers, who wake theirs, in the reverse order.
Schedule tournament(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const int p = a.size, r = a.rank;
  std::vector<StepId> arrived;
  std::vector<int> losers;
  StepId woken = kNoStep;
  for (int k = 1; k < p; k *= 2) {
    if (r % (2 * k) == 0) {
      if (r + k < p) {
        arrived.push_back(rcv(b, r + k));
        losers.push_back(r + k);
      }
    } else {
      StepId s = snd(b, r - k);
      add_deps(b, s, arrived);
      woken = rcv(b, r - k);
      break;
    }
  }
  StepId go = woken;
  if (r == 0 && !arrived.empty()) go = b.nop(arrived);
  for (auto it = losers.rbegin(); it != losers.rend(); ++it) snd(b, *it, {go});
  return std::move(b).finish();
}

// Recursive doubling: with m = pow2_floor(p), rank m+i first checks in with rank i; ranks
// 0..m-1 exchange with r xor d for d = 1, 2, ..., m/2 (each send after all earlier
// receives); rank i finally releases m+i.
Schedule recursive_doubling(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const int p = a.size, r = a.rank;
  if (p == 1) return std::move(b).finish();
  const int m = pow2_floor(p), x = p - m;
  if (r >= m) {
    snd(b, r - m);
    rcv(b, r - m);
    return std::move(b).finish();
  }
  std::vector<StepId> got;
  if (r < x) got.push_back(rcv(b, r + m));
  for (int d = 1; d < m; d *= 2) {
    StepId s = snd(b, r ^ d);
    add_deps(b, s, got);
    got.push_back(rcv(b, r ^ d));
  }
  if (r < x) add_deps(b, snd(b, r + m), got);
  return std::move(b).finish();
}

}  // namespace

std::vector<Algorithm> barrier_algorithms() {
  return {
      {"linear", Coll::Barrier, false, 0, false, linear,
       "everyone checks in with rank 0, which then releases everyone"},
      {"double_ring", Coll::Barrier, false, 0, false, double_ring, "a token twice around the ring from rank 0"},
      {"dissemination", Coll::Barrier, false, 0, false, dissemination,
       "ceil(log2 p) rounds: at distance k send to rank+k, receive from rank-k"},
      {"tournament", Coll::Barrier, false, 0, false, tournament,
       "pairwise tournament up to rank 0, then the wake-up back down the same tree"},
      {"recursive_doubling", Coll::Barrier, false, 0, false, recursive_doubling,
       "log2 rounds of pairwise exchanges; for p not a power of two the extra ranks check in with partners"},
  };
}

}  // namespace tandem::coll
