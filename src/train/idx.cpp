#include "train/idx.hpp"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <stdexcept>

namespace tandem::train {

std::size_t IdxArray::item_size() const {
  std::size_t n = 1;
  for (std::size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

namespace {

struct Gz {
  gzFile f = nullptr;
  ~Gz() {
    if (f) gzclose(f);
  }
};

// Reads up to n bytes; returns how many were read (fewer only at the end of the file).
std::size_t read_some(gzFile f, void* buf, std::size_t n, const std::string& path) {
  std::size_t got = 0;
  auto* p = static_cast<unsigned char*>(buf);
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
    const int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* what = gzerror(f, &err);
      throw std::runtime_error(fmt::format("{}: cannot read: {}", path, what ? what : "zlib error"));
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

std::uint32_t be32(const unsigned char* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  Gz gz;
  gz.f = gzopen(path.c_str(), "rb");  // reads plain files too (transparently)
  if (!gz.f) throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  unsigned char head[4];
  if (read_some(gz.f, head, 4, path) != 4) throw std::runtime_error(fmt::format("{}: truncated: no IDX header", path));
  if (head[0] != 0 || head[1] != 0)
    throw std::runtime_error(fmt::format("{}: not an IDX file (it starts with bytes {:#04x} {:#04x}, not 0 0)", path,
                                         head[0], head[1]));
  if (head[2] != 0x08)
    throw std::runtime_error(
        fmt::format("{}: IDX type {:#04x} is not unsigned byte (0x08), the type of the image datasets", path, head[2]));
  const int nd = head[3];
  if (nd < 1 || nd > 4) throw std::runtime_error(fmt::format("{}: {} dimensions (expected 1 to 4)", path, nd));
  IdxArray a;
  std::uint64_t total = 1;
  for (int i = 0; i < nd; ++i) {
    unsigned char b[4];
    if (read_some(gz.f, b, 4, path) != 4)
      throw std::runtime_error(fmt::format("{}: truncated in the header (dimension {} of {})", path, i + 1, nd));
    const std::uint32_t d = be32(b);
    if (d == 0) throw std::runtime_error(fmt::format("{}: dimension {} is 0", path, i + 1));
    a.dims.push_back(d);
    total *= d;
    if (total > (std::uint64_t{1} << 34))
      throw std::runtime_error(fmt::format("{}: the header announces more than 16 GiB of data: not an IDX file", path));
  }
  a.data.resize(static_cast<std::size_t>(total));
  const std::size_t got = read_some(gz.f, a.data.data(), a.data.size(), path);
  if (got != a.data.size())
    throw std::runtime_error(fmt::format("{}: truncated: {} of the {} data bytes the header announces", path, got,
                                         a.data.size()));
  unsigned char extra;
  if (read_some(gz.f, &extra, 1, path) != 0)
    throw std::runtime_error(fmt::format("{}: data after the {} bytes the header announces", path, a.data.size()));
  return a;
}

namespace {
std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    const std::string p = (std::filesystem::path(dir) / (stem + ext)).string();
    if (std::filesystem::exists(p)) return p;
  }
  throw std::runtime_error(fmt::format("{}: no {}.gz (nor {}): give the directory of the Fashion-MNIST files with --data "
                                       "(Debian: apt-get install dataset-fashion-mnist)",
                                       dir, stem, stem));
}

void check_pair(const IdxArray& images, const IdxArray& labels, const std::string& ip, const std::string& lp) {
  if (images.dims.size() != 3)
    throw std::runtime_error(fmt::format("{}: {} dimensions, images have 3 (count, rows, columns)", ip, images.dims.size()));
  if (labels.dims.size() != 1)
    throw std::runtime_error(fmt::format("{}: {} dimensions, labels have 1", lp, labels.dims.size()));
  if (images.count() != labels.count())
    throw std::runtime_error(fmt::format("{} has {} images but {} has {} labels", ip, images.count(), lp, labels.count()));
  for (std::size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] > 9)
      throw std::runtime_error(fmt::format("{}: label {} of item {} is not a class 0-9", lp, labels.data[i], i));
}
}  // namespace

Mnist read_mnist(const std::string& dir) {
  if (!std::filesystem::is_directory(dir))
    throw std::runtime_error(fmt::format("{}: not a directory (the Fashion-MNIST files' place; Debian: apt-get install "
                                         "dataset-fashion-mnist)", dir));
  Mnist m;
  const std::string tri = find_file(dir, "train-images-idx3-ubyte"), trl = find_file(dir, "train-labels-idx1-ubyte");
  const std::string tei = find_file(dir, "t10k-images-idx3-ubyte"), tel = find_file(dir, "t10k-labels-idx1-ubyte");
  m.train_images = read_idx(tri);
  m.train_labels = read_idx(trl);
  m.test_images = read_idx(tei);
  m.test_labels = read_idx(tel);
  check_pair(m.train_images, m.train_labels, tri, trl);
  check_pair(m.test_images, m.test_labels, tei, tel);
  if (m.train_images.dims[1] != m.test_images.dims[1] || m.train_images.dims[2] != m.test_images.dims[2])
    throw std::runtime_error(fmt::format("{} and {} have images of different shapes", tri, tei));
  return m;
}

}  // namespace tandem::train
