#include "common/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace tandem {

void log_vmessage(int rank, const char* fmt, va_list ap) {
  char buf[1024];
  int n = rank >= 0 ? std::snprintf(buf, sizeof buf, "tandem[rank %d]: ", rank) : std::snprintf(buf, sizeof buf, "tandem: ");
  if (n < 0) return;
  int m = std::vsnprintf(buf + n, sizeof buf - static_cast<std::size_t>(n) - 1, fmt, ap);
  if (m < 0) return;
  std::size_t len = std::strlen(buf);
  if (len == 0 || buf[len - 1] != '\n') buf[len++] = '\n';
  ssize_t w = ::write(2, buf, len);
  (void)w;
}

void log_message(int rank, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vmessage(rank, fmt, ap);
  va_end(ap);
}

void log_raw(const char* text) noexcept {
  ssize_t w = ::write(2, text, std::strlen(text));
  (void)w;
}

}  // namespace tandem
