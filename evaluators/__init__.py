"""One module per benchmark: a frozen spec plus a row -> BenchmarkItem converter. Importing this
package registers every bundled spec in ``mr2bench.registry.BENCHMARKS``."""
