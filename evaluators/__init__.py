"""One module per benchmark: a frozen spec plus a row -> BenchmarkItem converter. Importing this
package registers every bundled spec in ``mr2bench.registry.BENCHMARKS``."""
from . import (mm_rlhf_rewardbench, mr2bench_nway, multimodal_rewardbench,  # noqa: F401
               videorewardbench, vl_rewardbench)
