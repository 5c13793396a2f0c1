#include "coll/schedule.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace tandem::coll {

Builder::Builder(int rank, int size, std::uint32_t elem_size) {
  if (size < 1 || rank < 0 || rank >= size) throw std::invalid_argument(fmt::format("rank {} of {} ranks", rank, size));
  if (elem_size == 0) throw std::invalid_argument("element size 0");
  s_.rank = rank;
  s_.size = size;
  s_.elem_size = elem_size;
  sent_.assign(static_cast<std::size_t>(size), 0);
  received_.assign(static_cast<std::size_t>(size), 0);
}

StepId Builder::emit(Step st, std::initializer_list<StepId> deps) {
  auto id = static_cast<StepId>(s_.steps.size());
  s_.steps.push_back(st);
  std::vector<StepId> d;
  d.reserve(deps.size() + 1);
  if (fence_ != kNoStep) d.push_back(fence_);
  for (StepId x : deps)
    if (x != kNoStep) d.push_back(x);
  deps_.push_back(std::move(d));
  return id;
}

StepId Builder::send(int peer, Loc src, std::uint64_t bytes, std::initializer_list<StepId> deps) {
  Step st;
  st.kind = StepKind::Send;
  st.peer = peer;
  st.tag = sent_.at(static_cast<std::size_t>(peer))++;
  st.src = src;
  st.bytes = bytes;
  return emit(st, deps);
}

StepId Builder::recv(int peer, Loc dst, std::uint64_t bytes, std::initializer_list<StepId> deps) {
  Step st;
  st.kind = StepKind::Recv;
  st.peer = peer;
  st.tag = received_.at(static_cast<std::size_t>(peer))++;
  st.dst = dst;
  st.bytes = bytes;
  return emit(st, deps);
}

StepId Builder::reduce(Loc src, Loc dst, std::uint64_t bytes, bool src_first, std::initializer_list<StepId> deps) {
  Step st;
  st.kind = StepKind::Reduce;
  st.src_first = src_first;
  st.src = src;
  st.dst = dst;
  st.bytes = bytes;
  return emit(st, deps);
}

StepId Builder::copy(Loc src, Loc dst, std::uint64_t bytes, std::initializer_list<StepId> deps) {
  Step st;
  st.kind = StepKind::Copy;
  st.src = src;
  st.dst = dst;
  st.bytes = bytes;
  return emit(st, deps);
}

StepId Builder::nop(std::initializer_list<StepId> deps) { return emit(Step{}, deps); }

StepId Builder::nop(const std::vector<StepId>& deps) {
  StepId id = emit(Step{}, {});
  for (StepId d : deps)
    if (d != kNoStep) deps_[id].push_back(d);
  return id;
}

StepId Builder::add(const Step& st0, const std::vector<StepId>& deps) {
  Step st;
  st.kind = st0.kind;
  st.src_first = st0.src_first;
  st.peer = st0.peer;
  st.src = st0.src;
  st.dst = st0.dst;
  st.bytes = st0.bytes;
  if (st.kind == StepKind::Send) st.tag = sent_.at(static_cast<std::size_t>(st.peer))++;
  if (st.kind == StepKind::Recv) st.tag = received_.at(static_cast<std::size_t>(st.peer))++;
  StepId id = emit(st, {});
  for (StepId d : deps)
    if (d != kNoStep) deps_[id].push_back(d);
  return id;
}

void Builder::add_dep(StepId step, StepId dep) {
  if (dep == kNoStep) return;
  if (step >= deps_.size() || dep >= step) throw std::logic_error(fmt::format("bad dependency {} of step {}", dep, step));
  deps_[step].push_back(dep);
}

void Builder::fence() {
  std::size_t n = s_.steps.size();
  if (n == fence_from_) return;  // nothing since the last fence
  StepId prev = fence_;
  fence_ = kNoStep;  // the join itself must not depend on the old fence twice
  std::vector<StepId> all;
  if (prev != kNoStep) all.push_back(prev);
  for (std::size_t i = fence_from_; i < n; ++i) all.push_back(static_cast<StepId>(i));
  fence_ = nop(all);
  fence_from_ = s_.steps.size();
}

std::uint64_t Builder::scratch(std::uint64_t bytes) {
  std::uint64_t off = s_.tmp_bytes;
  // Keep scratch areas 64-byte aligned: any element type, and no false sharing between
  // areas written by different steps.
  s_.tmp_bytes += (bytes + 63) & ~std::uint64_t{63};
  return off;
}

Schedule Builder::finish() && {
  s_.deps.clear();
  for (std::size_t i = 0; i < s_.steps.size(); ++i) {
    auto& d = deps_[i];
    s_.steps[i].dep_begin = static_cast<std::uint32_t>(s_.deps.size());
    s_.steps[i].dep_count = static_cast<std::uint32_t>(d.size());
    s_.deps.insert(s_.deps.end(), d.begin(), d.end());
  }
  const std::size_t n = s_.steps.size();
  s_.succ_begin.assign(n + 1, 0);
  for (std::uint32_t d : s_.deps) ++s_.succ_begin[d + 1];
  for (std::size_t i = 0; i < n; ++i) s_.succ_begin[i + 1] += s_.succ_begin[i];
  s_.succ.resize(s_.deps.size());
  std::vector<std::uint32_t> fill(s_.succ_begin.begin(), s_.succ_begin.end() - 1);
  for (std::size_t i = 0; i < n; ++i)
    for (std::uint32_t d : deps_[i]) s_.succ[fill[d]++] = static_cast<std::uint32_t>(i);
  return std::move(s_);
}

const char* kind_name(StepKind k) {
  switch (k) {
    case StepKind::Send: return "send";
    case StepKind::Recv: return "recv";
    case StepKind::Reduce: return "reduce";
    case StepKind::Copy: return "copy";
    case StepKind::Nop: return "nop";
  }
  return "?";
}

namespace {
const char* buf_name(Buf b) {
  switch (b) {
    case Buf::Send: return "S";
    case Buf::Recv: return "R";
    case Buf::Tmp: return "T";
  }
  return "?";
}
}  // namespace

void Schedule::validate(std::uint64_t send_bytes, std::uint64_t recv_bytes) const {
  auto fail = [&](std::size_t i, const std::string& what) {
    throw std::logic_error(fmt::format("schedule of rank {} of {}: step {} ({}): {}", rank, size, i,
                                       kind_name(steps[i].kind), what));
  };
  auto check_range = [&](std::size_t i, Loc l, std::uint64_t bytes) {
    std::uint64_t limit = l.buf == Buf::Send ? send_bytes : l.buf == Buf::Recv ? recv_bytes : tmp_bytes;
    if (l.off > limit || bytes > limit - l.off)
      fail(i, fmt::format("range {}+{} of {} bytes outside its {} bytes", l.off, bytes, buf_name(l.buf), limit));
    if (l.off % elem_size || bytes % elem_size) fail(i, "range not in whole elements");
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& st = steps[i];
    if (std::uint64_t{st.dep_begin} + st.dep_count > deps.size()) fail(i, "dependency list out of range");
    for (std::uint32_t k = 0; k < st.dep_count; ++k)
      if (deps[st.dep_begin + k] >= i) fail(i, fmt::format("depends on later step {}", deps[st.dep_begin + k]));
    switch (st.kind) {
      case StepKind::Send:
      case StepKind::Recv:
        if (st.peer < 0 || st.peer >= size || st.peer == rank) fail(i, fmt::format("bad peer {}", st.peer));
        check_range(i, st.kind == StepKind::Send ? st.src : st.dst, st.bytes);
        if (st.kind == StepKind::Recv && st.dst.buf == Buf::Send) fail(i, "receives into the send buffer");
        break;
      case StepKind::Reduce:
      case StepKind::Copy:
        check_range(i, st.src, st.bytes);
        check_range(i, st.dst, st.bytes);
        if (st.dst.buf == Buf::Send) fail(i, "writes the send buffer");
        if (st.src.buf == st.dst.buf && st.src.off < st.dst.off + st.bytes && st.dst.off < st.src.off + st.bytes &&
            st.bytes > 0)
          fail(i, "source and destination overlap");
        break;
      case StepKind::Nop: break;
    }
  }
}

std::size_t Schedule::messages() const {
  std::size_t n = 0;
  for (const Step& st : steps) n += st.kind == StepKind::Send || st.kind == StepKind::Recv;
  return n;
}

std::string Schedule::dump() const {
  std::string out = fmt::format("rank {} of {}, elem {} B, tmp {} B, {} steps\n", rank, size, elem_size, tmp_bytes,
                                steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& st = steps[i];
    out += fmt::format("{:5} {:6}", i, kind_name(st.kind));
    switch (st.kind) {
      case StepKind::Send:
        out += fmt::format(" to {} tag {} {}+{}", st.peer, st.tag, buf_name(st.src.buf), st.src.off);
        break;
      case StepKind::Recv:
        out += fmt::format(" from {} tag {} {}+{}", st.peer, st.tag, buf_name(st.dst.buf), st.dst.off);
        break;
      case StepKind::Reduce:
      case StepKind::Copy:
        out += fmt::format(" {}+{} -> {}+{}{}", buf_name(st.src.buf), st.src.off, buf_name(st.dst.buf), st.dst.off,
                           st.kind == StepKind::Reduce ? (st.src_first ? " (src first)" : " (dst first)") : "");
        break;
      case StepKind::Nop: break;
    }
    if (st.kind != StepKind::Nop) out += fmt::format(" {} B", st.bytes);
    if (st.dep_count) {
      out += " after";
      for (std::uint32_t k = 0; k < st.dep_count; ++k) out += fmt::format(" {}", deps[st.dep_begin + k]);
    }
    out += "\n";
  }
  return out;
}

}  // namespace tandem::coll
