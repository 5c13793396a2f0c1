#include "coll/select.hpp"

#include <fmt/format.h>

#include <cctype>

namespace tandem::coll {

std::string forced_setting(Coll c) {
  std::string s = "TANDEM_COLL_";
  for (const char* p = coll_name(c); *p; ++p) s += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
  return s;
}

std::string cannot_run(const Algorithm& alg, const Query& q) {
  if (alg.coll != q.coll) return fmt::format("{} is an algorithm of {}", alg.name, coll_name(alg.coll));
  if (alg.commutative_only && !q.commutative)
    return fmt::format("{} algorithm {} combines out of rank order: it needs a commutative operation",
                       coll_name(q.coll), alg.name);
  return {};
}

Selector Selector::from_config(const Config& cfg, std::string* errors) {
  Selector s;
  s.small_ = cfg.coll_small;
  std::string out;
  try {
    for (Coll c : all_colls()) {
      auto i = static_cast<std::size_t>(c);
      const std::string& v = cfg.coll_forced[i];
      if (v.empty()) continue;
      if (v == kMpiChoice) {
        s.forced_mpi_[i] = true;
        continue;
      }
      std::string why;
      s.forced_[i] = parse_choice(c, v, &why);
      s.forced_text_[i] = v;
      if (!s.forced_[i]) out += setting_error(forced_setting(c), v, why);
    }
    if (!cfg.coll_rules.empty()) {
      std::string why;
      s.rules_ = load_rules(cfg.coll_rules, &why);
      if (!s.rules_) out += setting_error("TANDEM_COLL_RULES", cfg.coll_rules, why);
    }
  } catch (const std::exception& e) {
    out += std::string("tandem: collectives: ") + e.what() + "\n";
  }
  if (errors) *errors += out;
  return s;
}

bool Selector::has_settings(Coll c) const noexcept {
  auto i = static_cast<std::size_t>(c);
  if (forced_[i] || forced_mpi_[i] || estimator_) return true;
  if (rules_)
    for (const Rule& r : rules_->rules)
      if (r.coll == c) return true;
  return false;
}

Choice Selector::builtin(const Query& q) const {
  const bool small = q.bytes < small_, commutative = q.commutative;
  const int p = q.ranks;
  const char* name = "binomial";
  switch (q.coll) {
    case Coll::Bcast: name = small || p < 4 ? "binomial" : "scatter_ring"; break;
    case Coll::Reduce: name = small || !commutative ? "binomial" : "rabenseifner"; break;
    case Coll::Allreduce:
      name = !commutative ? (small ? "recursive_doubling" : "reduce_bcast") : small ? "recursive_doubling" : "ring";
      break;
    case Coll::Allgather: name = small ? "recursive_doubling" : "ring"; break;
    case Coll::Alltoall: name = small ? "bruck" : "pairwise"; break;
    case Coll::Gather:
    case Coll::Scatter: name = "binomial"; break;
    case Coll::ReduceScatterBlock: name = !commutative ? "reduce_scatter" : small ? "recursive_halving" : "ring"; break;
    case Coll::Barrier: name = "dissemination"; break;
  }
  Choice ch;
  ch.alg = find_algorithm(q.coll, name);
  if (!ch.alg && !algorithms(q.coll).empty()) ch.alg = &algorithms(q.coll).front();
  return ch;
}

Selection Selector::select(const Query& q, Fallback fb, const Choice* call_choice) const noexcept {
  Selection s;
  try {
    if (q.op && q.dtype && *q.op != ROp::User && !valid(*q.op, *q.dtype)) {
      s.reason = Reason::Invalid;
      s.why_not = fmt::format("MPI does not define {} on {}", rop_name(*q.op), dtype_name(*q.dtype));
      return s;
    }
    auto skip = [&](Reason r, const Rule* rule, std::string why) {
      if (s.why_not.empty()) {
        s.why_not = std::move(why);
        s.skipped = r;
        s.skipped_rule = rule;
      }
    };
    if (call_choice && call_choice->alg) {
      std::string why = cannot_run(*call_choice->alg, q);
      if (!why.empty()) {
        s.reason = Reason::Invalid;
        s.why_not = std::move(why);
        return s;
      }
      s.choice = *call_choice;
      s.reason = Reason::Call;
      return s;
    }
    auto i = static_cast<std::size_t>(q.coll);
    if (forced_mpi_[i] && fb == Fallback::Mpi) {
      s.reason = Reason::ForcedMpi;
      return s;
    }
    if (forced_[i]) {
      std::string why = cannot_run(*forced_[i]->alg, q);
      if (why.empty()) {
        s.choice = *forced_[i];
        s.reason = Reason::Forced;
        return s;
      }
      skip(Reason::Forced, nullptr, std::move(why));
    }
    if (rules_) {
      for (const Rule& r : rules_->rules) {
        if (r.coll != q.coll || q.ranks < r.ranks_lo || q.ranks > r.ranks_hi || q.bytes < r.bytes_lo ||
            q.bytes > r.bytes_hi)
          continue;
        if (!r.choice.alg) {  // `mpi`: the MPI library's own; the C++ API goes on to the next level
          if (fb != Fallback::Mpi) continue;
          s.reason = Reason::Rule;
          s.rule = &r;
          return s;
        }
        std::string why = cannot_run(*r.choice.alg, q);
        if (!why.empty()) {
          skip(Reason::Rule, &r, std::move(why));
          continue;
        }
        s.choice = r.choice;
        s.reason = Reason::Rule;
        s.rule = &r;
        return s;
      }
    }
    if (estimator_) {
      if (auto e = estimator_->estimate(q); e && e->alg && cannot_run(*e->alg, q).empty()) {
        s.choice = *e;
        s.reason = Reason::Model;
        return s;
      }
    }
    if (fb == Fallback::Mpi) {
      s.reason = Reason::NoChoice;
      return s;
    }
    s.choice = builtin(q);
    s.reason = Reason::Default;
    return s;
  } catch (...) {
    s = Selection{};
    s.reason = fb == Fallback::Mpi ? Reason::NoChoice : Reason::Invalid;
    if (fb == Fallback::Builtin) s.why_not = "out of memory";
    return s;
  }
}

std::string Selector::describe(Coll c, const Selection& s) const {
  auto i = static_cast<std::size_t>(c);
  switch (s.reason) {
    case Reason::Call: return "the call's own choice";
    case Reason::Forced: return forced_setting(c) + "=" + forced_text_[i];
    case Reason::ForcedMpi: return forced_setting(c) + "=mpi";
    case Reason::Rule:
      return s.rule && rules_ ? fmt::format("{}:{}", rules_->source, s.rule->line) : std::string("a rule");
    case Reason::Model: return estimator_ ? estimator_->describe() : std::string("the model");
    case Reason::Default: return "built-in default";
    case Reason::NoChoice: return "no setting chose tandem's";
    case Reason::Invalid: return "invalid: " + s.why_not;
  }
  return "?";
}

std::string Selector::describe_skipped(Coll c, const Selection& s) const {
  auto i = static_cast<std::size_t>(c);
  if (s.skipped == Reason::Forced) return forced_setting(c) + "=" + forced_text_[i];
  if (s.skipped == Reason::Rule && s.skipped_rule && rules_)
    return fmt::format("{}:{} ({})", rules_->source, s.skipped_rule->line,
                       s.skipped_rule->choice.alg ? s.skipped_rule->choice.str() : std::string(kMpiChoice));
  return "?";
}

}  // namespace tandem::coll
