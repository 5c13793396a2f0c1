// The `tandem` command-line front end: shared helpers and the subcommand registrars.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/process.hpp"

namespace tandem::cli {

using Env = process::Env;

// Subcommands; each adds itself to `app` and runs from its callback.
void add_info(CLI::App& app);
void add_run(CLI::App& app);
void add_vcluster(CLI::App& app);
void add_bench(CLI::App& app);  // also registers `tandem demo`
void add_sim(CLI::App& app);
void add_profile(CLI::App& app);
void add_tune(CLI::App& app);
void add_train(CLI::App& app);  // runs apps/train's trainer for the launcher's MPI

// The preload library for an MPI ("openmpi" or "mpich"); throws CLI::Error-free
// std::runtime_error naming the missing file.
std::filesystem::path preload_library(const std::string& mpi);

// The MPI a launcher command runs ("openmpi" or "mpich"), read from the ELF
// dependencies of the programs it names, or from the launcher itself.
std::optional<std::string> detect_mpi(const std::vector<std::string>& argv);

// The environment that makes every process of `argv` load tandem's preload
// library for `mpi` (LD_PRELOAD prepended), plus `extra`.
Env preload_env(const std::string& mpi, const Env& extra = {});

// Throws std::runtime_error with the TANDEM_* configuration errors of this environment.
void check_environment();

// Command-line values through the one parser of sizes, rates and durations
// (common/units.hpp): CLI11 validators that name what is wrong, and conversions that
// throw std::runtime_error with the same message.
CLI::Validator bytes_validator(std::uint64_t max = UINT64_MAX);
CLI::Validator rate_validator();
CLI::Validator duration_validator(bool bare_is_microseconds);
std::uint64_t parse_bytes_or_throw(const std::string& text, std::uint64_t max = UINT64_MAX);
std::uint64_t parse_rate_or_throw(const std::string& text);
// A duration in microseconds (a bare number is microseconds).
std::uint64_t parse_us_or_throw(const std::string& text);

}  // namespace tandem::cli
