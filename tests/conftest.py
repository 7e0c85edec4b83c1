import atexit
import os
import shutil
import sys
import tempfile

# Tests import their shared helpers (tests/_problems.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))

# The suite runs as it was written for, on JAX's one default CPU device (tests
# that need several start processes with their own count); under pytest-xdist
# (`-n auto`) each worker is such a process. It compiles through the
# persistent cache, as users do, in a fresh folder of this run (never the
# user's ~/.cache), shared with the processes the tests start: the many tests
# that train the same small sweeps again read its programs back (measured:
# the checkpoint tests and test_sweep in 131 s against 169 s without). Under xdist
# the controller makes the one folder, before it starts the workers (they
# inherit its environment), and removes it at its exit: the workers share the
# programs each other compiled. The manifest still counts every program
# ("compilations"), hit or not; the cache's own tests (test_compile_cache.py)
# use folders of their own.
_SESSION = "MOMENTUM_JAX_TEST_SESSION_FOLDER"
os.environ["MOMENTUM_JAX_CPU_DEVICES"] = "1"
if "PYTEST_XDIST_WORKER" not in os.environ or _SESSION not in os.environ:
  os.environ[_SESSION] = tempfile.mkdtemp(prefix="momentum_jax_tests_")
  atexit.register(shutil.rmtree, os.environ[_SESSION], ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = os.environ[_SESSION]
os.environ["MOMENTUM_JAX_COMPILE_CACHE"] = os.path.join(os.environ[_SESSION], "xla")
# Kept programs (momentum_jax.sweep._program_cache) are keyed by momentum_jax's
# source, which cannot see the patches many tests make to its functions: the
# suite leaves them off, but in test_program_cache.py.
os.environ["MOMENTUM_JAX_PROGRAM_CACHE"] = "off"
