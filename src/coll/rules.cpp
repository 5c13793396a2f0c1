#include "coll/rules.hpp"

#include <fmt/format.h>

#include "common/units.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace tandem::coll {

const Rule* Rules::match(Coll c, int p, std::uint64_t bytes) const {
  for (const Rule& r : rules)
    if (r.coll == c && p >= r.ranks_lo && p <= r.ranks_hi && bytes >= r.bytes_lo && bytes <= r.bytes_hi) return &r;
  return nullptr;
}

bool Rules::forces_mpi_algorithm() const {
  for (const Rule& r : rules)
    if (!r.choice.alg && !r.mpi_alg.empty()) return true;
  return false;
}

std::string mpi_choice_text(const std::string& alg, std::uint64_t segsize, int fanout) {
  if (alg.empty()) return "mpi";
  std::string s = "mpi:" + alg;
  if (segsize || fanout > 0) s += ":" + (segsize ? units::format_bytes(segsize) : std::string("0"));
  if (fanout > 0) s += ":" + std::to_string(fanout);
  return s;
}

std::string Rule::choice_text() const {
  return choice.alg ? choice.str() : mpi_choice_text(mpi_alg, mpi_segsize, mpi_fanout);
}

namespace {

bool number(std::string_view s, std::uint64_t* out, bool bytes) {
  return bytes ? units::parse_bytes(s, *out) : units::parse_count(s, *out);
}

// `*`, `N`, `N-M`, `N-`.
bool range(std::string_view s, std::uint64_t* lo, std::uint64_t* hi, bool suffixes) {
  if (s == "*") return true;
  std::size_t dash = s.find('-');
  if (dash == std::string_view::npos) {
    if (!number(s, lo, suffixes)) return false;
    *hi = *lo;
    return true;
  }
  if (!number(s.substr(0, dash), lo, suffixes)) return false;
  std::string_view rest = s.substr(dash + 1);
  if (rest.empty()) return true;
  return number(rest, hi, suffixes) && *hi >= *lo;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    std::size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

std::optional<Rules> parse_rules(std::string_view text, const std::string& source, std::string* why) {
  Rules out;
  out.source = source;
  bool header = false;
  int lineno = 0;
  auto fail = [&](const std::string& msg) -> std::optional<Rules> {
    if (why) *why = fmt::format("{}:{}: {}", source, lineno, msg);
    return std::nullopt;
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    std::size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    auto w = words(line);
    if (w.empty()) continue;
    if (!header) {
      if (w.size() != 2 || w[0] != "tandem-coll-rules")
        return fail("the first line must be `tandem-coll-rules 1` (format and version)");
      std::uint64_t v = 0;
      if (!number(w[1], &v, false) || v != kRulesVersion)
        return fail(fmt::format("rules format version `{}` is not supported (this tandem reads version {})", w[1],
                                kRulesVersion));
      header = true;
      continue;
    }
    if (w.size() != 4) return fail("expected: collective ranks bytes algorithm[:segsize[:fanout]]");
    Rule r;
    r.line = lineno;
    auto c = parse_coll(w[0]);
    if (!c) {
      std::string known;
      for (Coll x : all_colls()) known += (known.empty() ? "" : ", ") + std::string(coll_name(x));
      return fail(fmt::format("unknown collective `{}` (known: {})", w[0], known));
    }
    r.coll = *c;
    std::uint64_t lo = 0, hi = INT32_MAX;
    if (!range(w[1], &lo, &hi, false) || lo > INT32_MAX || hi > INT32_MAX)
      return fail(fmt::format("rank range `{}` is not *, N, N-M or N-", w[1]));
    r.ranks_lo = static_cast<int>(lo);
    r.ranks_hi = static_cast<int>(hi);
    if (!range(w[2], &r.bytes_lo, &r.bytes_hi, true))
      return fail(fmt::format("size range `{}` is not *, N, N-M or N- (bytes, K/M/G allowed)", w[2]));
    if (w[3] == "mpi") {  // the MPI library's own algorithm (under `tandem run`)
      out.rules.push_back(r);
      continue;
    }
    if (w[3].substr(0, 4) == "mpi:") {  // one of the MPI library's own algorithms: mpi:ALG[:SEG[:FAN]]
      std::vector<std::string_view> part;
      for (std::string_view rest = w[3].substr(4);;) {
        const std::size_t colon = rest.find(':');
        part.push_back(rest.substr(0, colon));
        if (colon == std::string_view::npos) break;
        rest = rest.substr(colon + 1);
      }
      const std::string_view alg = part[0];
      auto name_char = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'; };
      if (part.size() > 3 || alg.empty() || !std::all_of(alg.begin(), alg.end(), name_char))
        return fail(fmt::format("`{}`: expected mpi:ALGORITHM[:SEGSIZE[:FANOUT]] (one of the MPI library's own algorithms)",
                                w[3]));
      r.mpi_alg = std::string(alg);
      if (part.size() > 1 && !number(part[1], &r.mpi_segsize, true))
        return fail(fmt::format("`{}`: segment size `{}` is not a size (bytes, K/M/G allowed)", w[3], part[1]));
      if (part.size() > 2) {
        std::uint64_t f = 0;
        if (!number(part[2], &f, false) || f < 1 || f > 1024)
          return fail(fmt::format("`{}`: fan-out `{}` is not a count from 1 to 1024", w[3], part[2]));
        r.mpi_fanout = static_cast<int>(f);
      }
      out.rules.push_back(r);
      continue;
    }
    std::string bad;
    auto ch = parse_choice(r.coll, w[3], &bad);
    if (!ch) return fail(bad);
    r.choice = *ch;
    out.rules.push_back(r);
  }
  if (!header) return fail("empty rules file: the first line must be `tandem-coll-rules 1`");
  return out;
}

std::optional<Rules> load_rules(const std::string& path, std::string* why) {
  std::ifstream f(path);
  if (!f) {
    if (why) *why = fmt::format("cannot read rules file {}", path);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_rules(ss.str(), path, why);
}

std::string format_rules(const Rules& r) {
  std::string out = fmt::format("tandem-coll-rules {}\n# collective ranks bytes algorithm[:segsize[:fanout]]\n", kRulesVersion);
  auto rng = [](std::uint64_t lo, std::uint64_t hi, std::uint64_t top) {
    if (lo == 0 && hi >= top) return std::string("*");
    if (hi >= top) return fmt::format("{}-", lo);
    if (lo == hi) return fmt::format("{}", lo);
    return fmt::format("{}-{}", lo, hi);
  };
  for (const Rule& x : r.rules)
    out += fmt::format("{} {} {} {}\n", coll_name(x.coll), rng(static_cast<std::uint64_t>(x.ranks_lo),
                                                               static_cast<std::uint64_t>(x.ranks_hi), INT32_MAX),
                       rng(x.bytes_lo, x.bytes_hi, UINT64_MAX), x.choice_text());
  return out;
}

}  // namespace tandem::coll
