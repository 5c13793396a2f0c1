// Whole-file text I/O for tandem's own files (profiles, tuning states, records, rules).
#pragma once
#include <string>
#include <string_view>

namespace tandem::files {

// The file's contents; throws std::runtime_error "cannot read PATH" when it cannot be opened.
std::string read_text(const std::string& path);

// Writes `text` to PATH.tmp and renames it to PATH, so that a reader never sees half a
// file and an interrupted write leaves the old one; throws std::runtime_error naming
// what failed.
void write_text_atomically(const std::string& path, std::string_view text);

}  // namespace tandem::files
