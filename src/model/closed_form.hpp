// Closed-form estimates of the textbook kind, beside the simulator for comparison: each
// algorithm's time written as a formula of a message's cost, with the parameters taken
// from a profile. Free of MPI.
//
//   Hockney  a message of m bytes costs alpha + beta m, one after the other
//            (alpha, beta fitted to the profile's one-way times)
//   LogGP    a message costs L + 2o + (m - 1) G end to end, and a further message from the
//            same endpoint max(g, o + (m - 1) G) more (L, o, g at the smallest size, G the
//            per-byte gap of the largest)
// A reduction adds gamma m (the profile's reduce cost). Both take one link class (between
// nodes when the job spans several) and ignore contention and topology: the simulator
// is the model tandem selects with; these show what the closed forms miss.
#pragma once
#include <optional>

#include "coll/algorithms.hpp"
#include "model/profile.hpp"
#include "model/sim.hpp"

namespace tandem::model {

enum class Closed { Hockney, LogGP };

const char* closed_name(Closed c);

// The estimate in seconds, or nullopt for an algorithm no formula is written for.
std::optional<double> closed_form(Closed c, const coll::Algorithm& alg, const coll::Args& a, const Profile& p,
                                  const Topology& t, const SimOptions& o = {});

}  // namespace tandem::model
