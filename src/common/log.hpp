// Minimal async-signal-safe-capable logging to standard error.
#pragma once
#include <cstdarg>

namespace tandem {

// printf-style message prefixed with "tandem[rank R]: " (rank -1: "tandem: "); one write(2).
void log_message(int rank, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmessage(int rank, const char* fmt, va_list ap);

// Async-signal-safe: writes a fixed string to standard error.
void log_raw(const char* text) noexcept;

}  // namespace tandem
