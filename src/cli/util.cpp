#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "cli/cli.hpp"
#include "coll/select.hpp"
#include "common/config.hpp"
#include "common/units.hpp"
#include "model/estimator.hpp"

namespace tandem::cli {
namespace fs = std::filesystem;

fs::path preload_library(const std::string& mpi) {
  auto p = process::library_dir() / ("libtandem_preload_" + mpi + ".so");
  if (!fs::exists(p)) throw std::runtime_error("preload library " + p.string() + " is missing; build tandem first");
  return p;
}

namespace {

// The DT_NEEDED entries of an ELF file, or nothing when it is not a 64-bit ELF.
std::optional<std::vector<std::string>> elf_needed(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    ::close(fd);
    return std::nullopt;
  }
  auto size = static_cast<std::size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return std::nullopt;
  const auto* base = static_cast<const unsigned char*>(map);
  std::optional<std::vector<std::string>> result;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  auto in = [&](std::uint64_t off, std::uint64_t len) { return off <= size && len <= size - off; };
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      in(eh->e_phoff, std::uint64_t(eh->e_phnum) * sizeof(Elf64_Phdr))) {
    result.emplace();
    const auto* ph = reinterpret_cast<const Elf64_Phdr*>(base + eh->e_phoff);
    const Elf64_Phdr* dyn = nullptr;
    for (int i = 0; i < eh->e_phnum; ++i)
      if (ph[i].p_type == PT_DYNAMIC) dyn = &ph[i];
    // Map a virtual address to a file offset through the PT_LOAD segments.
    auto v2o = [&](std::uint64_t va) -> std::optional<std::uint64_t> {
      for (int i = 0; i < eh->e_phnum; ++i)
        if (ph[i].p_type == PT_LOAD && va >= ph[i].p_vaddr && va < ph[i].p_vaddr + ph[i].p_filesz)
          return va - ph[i].p_vaddr + ph[i].p_offset;
      return std::nullopt;
    };
    if (dyn && in(dyn->p_offset, dyn->p_filesz)) {
      const auto* d = reinterpret_cast<const Elf64_Dyn*>(base + dyn->p_offset);
      std::size_t n = dyn->p_filesz / sizeof(Elf64_Dyn);
      std::optional<std::uint64_t> strtab;
      for (std::size_t i = 0; i < n && d[i].d_tag != DT_NULL; ++i)
        if (d[i].d_tag == DT_STRTAB) strtab = v2o(d[i].d_un.d_ptr);
      if (strtab) {
        for (std::size_t i = 0; i < n && d[i].d_tag != DT_NULL; ++i)
          if (d[i].d_tag == DT_NEEDED && *strtab + d[i].d_un.d_val < size) {
            const char* s = reinterpret_cast<const char*>(base + *strtab + d[i].d_un.d_val);
            result->emplace_back(s, strnlen(s, size - (*strtab + d[i].d_un.d_val)));
          }
      }
    }
  }
  munmap(map, size);
  return result;
}

std::optional<fs::path> which(const std::string& name) {
  if (name.find('/') != std::string::npos) return fs::exists(name) ? std::optional<fs::path>(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

std::optional<std::string> mpi_of_needed(const std::vector<std::string>& needed) {
  for (const auto& n : needed) {
    if (n.rfind("libmpi.so.40", 0) == 0 || n.rfind("libopen-rte.so", 0) == 0) return "openmpi";
    if (n.rfind("libmpich.so", 0) == 0 || n.rfind("libmpi.so.12", 0) == 0) return "mpich";
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> detect_mpi(const std::vector<std::string>& argv) {
  // Programs named in the command (the application is usually the first ELF file that links an MPI).
  std::optional<std::string> launcher_guess;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    auto p = i == 0 ? which(argv[i]) : (fs::exists(argv[i]) ? std::optional<fs::path>(argv[i]) : which(argv[i]));
    if (!p || fs::is_directory(*p)) continue;
    std::error_code ec;
    fs::path real = fs::canonical(*p, ec);
    if (ec) continue;
    std::string base = real.filename().string();
    if (base.find("orterun") != std::string::npos || base.find(".openmpi") != std::string::npos)
      launcher_guess = launcher_guess.value_or("openmpi");
    if (base.find("hydra") != std::string::npos || base.find(".mpich") != std::string::npos)
      launcher_guess = launcher_guess.value_or("mpich");
    auto needed = elf_needed(real);
    if (!needed) continue;
    if (auto m = mpi_of_needed(*needed); m && base.find("orterun") == std::string::npos &&
                                         base.find("orted") == std::string::npos)
      return m;
  }
  return launcher_guess;
}

Env preload_env(const std::string& mpi, const Env& extra) {
  std::string lib = preload_library(mpi).string();
  const char* old = std::getenv("LD_PRELOAD");
  Env env{{"LD_PRELOAD", old && *old ? lib + ":" + old : lib}};
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

void check_environment() {
  Config cfg;
  std::string errors = load_config(cfg);
  coll::Selector::from_config(cfg, &errors);
  model::estimator_from_config(cfg, &errors);
  if (!errors.empty()) {
    if (errors.back() == '\n') errors.pop_back();
    throw std::runtime_error("bad configuration:\n" + errors);
  }
}

CLI::Validator bytes_validator(std::uint64_t max) {
  return CLI::Validator(
      [max](std::string& t) {
        std::uint64_t v = 0;
        std::string why;
        return units::parse_bytes(t, v, max, &why) ? std::string() : why;
      },
      "BYTES");
}

CLI::Validator rate_validator() {
  return CLI::Validator(
      [](std::string& t) {
        std::uint64_t v = 0;
        std::string why;
        return units::parse_rate(t, v, &why) ? std::string() : why;
      },
      "RATE");
}

CLI::Validator duration_validator(bool bare_us) {
  return CLI::Validator(
      [bare_us](std::string& t) {
        std::uint64_t v = 0;
        std::string why;
        return units::parse_duration(t, bare_us ? units::TimeUnit::Microseconds : units::TimeUnit::Seconds, v, &why)
                   ? std::string()
                   : why;
      },
      "DURATION");
}

std::uint64_t parse_bytes_or_throw(const std::string& text, std::uint64_t max) {
  std::uint64_t v = 0;
  std::string why;
  if (!units::parse_bytes(text, v, max, &why)) throw std::runtime_error(why);
  return v;
}

std::uint64_t parse_rate_or_throw(const std::string& text) {
  std::uint64_t v = 0;
  std::string why;
  if (!units::parse_rate(text, v, &why)) throw std::runtime_error(why);
  return v;
}

std::uint64_t parse_us_or_throw(const std::string& text) {
  std::uint64_t ns = 0;
  std::string why;
  if (!units::parse_duration(text, units::TimeUnit::Microseconds, ns, &why)) throw std::runtime_error(why);
  return ns / 1000;
}

}  // namespace tandem::cli
