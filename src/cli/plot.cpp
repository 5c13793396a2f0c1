// SVG line plots for the benchmarks (filled in with the benchmarks).
