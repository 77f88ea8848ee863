"""XLA's flags for everything pytest runs here, the tests (`tests/`) and the docstring examples (`funcnn/`):
set before JAX starts its backend, which reads XLA_FLAGS once."""

import os

# Most tests compile far longer than they run: XLA compiles them without its backend optimizations
# (LLVM at -O0, no fusion emitters), which halves the suite's compile time and computes the same values
# (every comparison a test makes is between programs compiled alike). Tests that train long enough for
# that code to be slow carry the `optimized` mark and run with XLA's defaults in a pytest invocation of
# their own (`FUNCNN_TEST_XLA=optimized`; `make test` runs both). Measured on 2 cores: a ResNet
# population test 44 s -> 10 s; the Fashion-MNIST CNN 89 s -> 341 s, hence the mark. The LLVM module is
# compiled in one piece, not split for parallel codegen (the same code, function by function): with two
# test processes on two cores the split only costs, 7-11% of three lottery and pruning test files
# (3 pairs back to back, one process, 2026-12-08).
FAST_COMPILE_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1"
)
XLA_MODE = os.environ.get("FUNCNN_TEST_XLA", "fast-compile")
if XLA_MODE not in ("fast-compile", "optimized"):
    raise ValueError(f"FUNCNN_TEST_XLA must be 'fast-compile' or 'optimized', got {XLA_MODE!r}")
if XLA_MODE == "fast-compile" and FAST_COMPILE_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()
