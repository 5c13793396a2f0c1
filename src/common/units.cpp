#include "common/units.hpp"

#include <cctype>
#include <cmath>

namespace tandem::units {
namespace {

// A decimal number "123" or "1.25" at the start of s: its digits as an integer mantissa and
// the count of fraction digits; the rest of s in *rest. False when there is no digit.
bool number(std::string_view s, std::uint64_t* mantissa, int* fraction_digits, std::string_view* rest) {
  std::size_t i = 0;
  std::uint64_t m = 0;
  int frac = 0, digits = 0;
  bool dot = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    if (m > (UINT64_MAX - 9) / 10) return false;  // too many digits
    m = m * 10 + static_cast<unsigned>(c - '0');
    ++digits;
    if (dot) ++frac;
  }
  if (digits == 0 || (dot && frac == 0)) return false;
  *mantissa = m;
  *fraction_digits = frac;
  *rest = trim(s.substr(i));
  return true;
}

// mantissa / 10^frac * mult as a whole number, false when it is not one or overflows.
bool scale(std::uint64_t mantissa, int frac, std::uint64_t mult, std::uint64_t* out) {
  if (frac > 18) return false;
  std::uint64_t div = 1;
  for (int k = 0; k < frac; ++k) div *= 10;
  // mantissa * mult / div, exactly.
  unsigned __int128 v = static_cast<unsigned __int128>(mantissa) * mult;
  if (v % div) return false;
  v /= div;
  if (v > UINT64_MAX) return false;
  *out = static_cast<std::uint64_t>(v);
  return true;
}

bool fail(std::string* why, std::string msg) {
  if (why) *why = std::move(msg);
  return false;
}

std::string quoted(std::string_view t) { return "`" + std::string(t) + "`"; }

}  // namespace

bool parse_bytes(std::string_view text, std::uint64_t& out, std::uint64_t max, std::string* why) noexcept {
  try {
    std::string_view t = trim(text), unit;
    std::uint64_t m = 0;
    int frac = 0;
    auto bad = [&] { return fail(why, quoted(t) + " is not a size (like 4096, 64K, 1M)"); };
    if (!number(t, &m, &frac, &unit)) return bad();
    std::uint64_t mult = 0;
    if (unit.empty() || iequals(unit, "b")) mult = 1;
    static constexpr struct {
      const char* name;
      int shift;
    } kUnits[] = {{"k", 10}, {"kb", 10}, {"kib", 10}, {"m", 20}, {"mb", 20}, {"mib", 20},
                  {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40}, {"tb", 40}, {"tib", 40}};
    for (const auto& u : kUnits)
      if (iequals(unit, u.name)) mult = std::uint64_t{1} << u.shift;
    if (!mult) return bad();
    std::uint64_t v = 0;
    if (!scale(m, frac, mult, &v)) return fail(why, quoted(t) + " is not a whole number of bytes");
    if (v > max) return fail(why, quoted(t) + " is more than " + format_bytes(max) + " bytes");
    out = v;
    return true;
  } catch (...) {
    return fail(why, "out of memory");
  }
}

bool parse_rate(std::string_view text, std::uint64_t& bps, std::string* why) noexcept {
  try {
    std::string_view t = trim(text), unit;
    std::uint64_t m = 0;
    int frac = 0;
    auto bad = [&] { return fail(why, quoted(t) + " is not a rate (like 1gbit, 100mbit, 2.5gbit)"); };
    if (!number(t, &m, &frac, &unit)) return bad();
    std::uint64_t mult = 0;
    std::string_view base = unit;
    if (base.size() >= 3 && iequals(base.substr(base.size() - 3), "bit")) base.remove_suffix(3);
    else if (base.size() >= 3 && iequals(base.substr(base.size() - 3), "bps")) base.remove_suffix(3);
    else return bad();
    if (base.empty()) mult = 1;
    else if (iequals(base, "k")) mult = 1000;
    else if (iequals(base, "m")) mult = 1000000;
    else if (iequals(base, "g")) mult = 1000000000;
    else if (iequals(base, "t")) mult = 1000000000000ull;
    else return bad();
    std::uint64_t v = 0;
    if (!scale(m, frac, mult, &v)) return fail(why, quoted(t) + " is not a whole number of bits per second");
    bps = v;
    return true;
  } catch (...) {
    return fail(why, "out of memory");
  }
}

bool parse_duration(std::string_view text, TimeUnit bare, std::uint64_t& ns, std::string* why) noexcept {
  try {
    std::string_view t = trim(text), unit;
    std::uint64_t m = 0;
    int frac = 0;
    auto bad = [&] { return fail(why, quoted(t) + " is not a duration (like 20us, 1.5ms, 30s)"); };
    if (!number(t, &m, &frac, &unit)) return bad();
    static constexpr std::uint64_t kPer[] = {1, 1000, 1000000, 1000000000};
    std::uint64_t mult = 0;
    if (unit.empty()) mult = kPer[static_cast<int>(bare)];
    else if (iequals(unit, "ns")) mult = 1;
    else if (iequals(unit, "us")) mult = 1000;
    else if (iequals(unit, "ms")) mult = 1000000;
    else if (iequals(unit, "s")) mult = 1000000000;
    else if (iequals(unit, "min")) mult = 60000000000ull;
    else return bad();
    std::uint64_t v = 0;
    if (!scale(m, frac, mult, &v)) return fail(why, quoted(t) + " is not a whole number of nanoseconds");
    ns = v;
    return true;
  } catch (...) {
    return fail(why, "out of memory");
  }
}

bool parse_count(std::string_view text, std::uint64_t& out, std::uint64_t max, std::string* why) noexcept {
  try {
    std::string_view t = trim(text), rest;
    std::uint64_t m = 0;
    int frac = 0;
    if (!number(t, &m, &frac, &rest) || frac || !rest.empty()) return fail(why, quoted(t) + " is not a whole number");
    if (m > max) return fail(why, quoted(t) + " is more than " + std::to_string(max));
    out = m;
    return true;
  } catch (...) {
    return fail(why, "out of memory");
  }
}

std::string format_bytes(std::uint64_t b) {
  static const char* kUnits[] = {"", "K", "M", "G", "T", "P", "E"};
  int u = 0;
  while (b && b % 1024 == 0 && u < 6) b /= 1024, ++u;
  return std::to_string(b) + kUnits[u];
}

std::string format_rate(std::uint64_t bps) {
  static const char* kUnits[] = {"bit", "kbit", "mbit", "gbit", "tbit"};
  int u = 0;
  while (bps && bps % 1000 == 0 && u < 4) bps /= 1000, ++u;
  return std::to_string(bps) + kUnits[u];
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace tandem::units
