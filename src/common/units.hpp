// The one parser of sizes, rates and durations, used by the settings registry, rules files,
// algorithm choices, the command line and the virtual cluster. Nothing here throws.
//
//   bytes      1234, 64K, 64KB, 64KiB, 1.5M, 2 g          K/M/G/T = 2^10/2^20/2^30/2^40
//                                                         (KB and KiB alike); B optional
//   rates      1gbit, 100mbit, 2.5gbit, 500kbit, 10bit    bits per second, decimal units
//                                                         (k/m/g/t = 10^3/6/9/12), `bit`
//                                                         or `bps` after them
//   durations  250ns, 20us, 1.5ms, 30s, 2min              a bare number takes the caller's
//                                                         unit (e.g. microseconds)
// Letters are case-insensitive, blanks around the number and the unit are allowed, and a
// fraction must come out as a whole number of the base unit (1.5K is 1536 bytes; 1.3B is
// not a size).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::units {

// Bytes, at most `max`. On failure returns false and, when `why` is given, says what
// is wrong ("`12Q` is not a size (like 4096, 64K, 1M)").
bool parse_bytes(std::string_view text, std::uint64_t& out, std::uint64_t max = UINT64_MAX,
                 std::string* why = nullptr) noexcept;
// Bits per second (a unit is required).
bool parse_rate(std::string_view text, std::uint64_t& bits_per_second, std::string* why = nullptr) noexcept;

enum class TimeUnit : std::uint8_t { Nanoseconds, Microseconds, Milliseconds, Seconds };
// A duration in nanoseconds; a number without unit is in `bare`.
bool parse_duration(std::string_view text, TimeUnit bare, std::uint64_t& nanoseconds,
                    std::string* why = nullptr) noexcept;
// A whole number without unit, at most `max`.
bool parse_count(std::string_view text, std::uint64_t& out, std::uint64_t max = UINT64_MAX,
                 std::string* why = nullptr) noexcept;

// The text without leading and trailing blanks; ASCII case-insensitive equality.
std::string_view trim(std::string_view s) noexcept;
bool iequals(std::string_view a, std::string_view b) noexcept;

// Short forms for messages and tables: 65536 -> "64K", 1536 -> "1536", 1000000000 -> "1gbit".
std::string format_bytes(std::uint64_t bytes);
std::string format_rate(std::uint64_t bits_per_second);

}  // namespace tandem::units
