// Reading IDX files (the format of MNIST and Fashion-MNIST), gzip-compressed or plain,
// through zlib. Free of MPI and of libtorch.
//
// An IDX file is a big-endian header: two zero bytes, a type code (0x08: unsigned byte,
// the only type the datasets use and this reader accepts), the number of dimensions, one
// 32-bit size per dimension, then the data in row-major order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::train {

struct IdxArray {
  std::vector<std::uint32_t> dims;  // e.g. {60000, 28, 28} for images, {60000} for labels
  std::vector<std::uint8_t> data;   // product(dims) bytes
  std::size_t count() const { return dims.empty() ? 0 : dims[0]; }
  std::size_t item_size() const;  // bytes per item (product of dims but the first)
};

// Reads a whole IDX file. Throws std::runtime_error naming the file and what is wrong: it
// cannot be opened, is not gzip or IDX (bad magic), has a type other than unsigned byte,
// an implausible shape, is truncated (fewer data bytes than the header announces) or has
// data after the end.
IdxArray read_idx(const std::string& path);

// The Fashion-MNIST (or MNIST) files of a directory, as the datasets name them:
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Checks that images and labels agree
// in count and that labels are digits 0..9.
struct Mnist {
  IdxArray train_images, train_labels, test_images, test_labels;
};
Mnist read_mnist(const std::string& dir);

// Where Debian's dataset-fashion-mnist installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

}  // namespace tandem::train
