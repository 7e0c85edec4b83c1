import atexit
import os
import shutil
import sys
import tempfile

# Tests import their shared helpers (tests/_problems.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))

# The suite runs as it was written for, on JAX's one default CPU device (tests
# that need several start processes with their own count), and compiles
# without the persistent cache: a hit would hide the compilations some tests
# count, and a CI clone starts with an empty cache anyway. Whatever a test
# caches goes to a fresh folder, never to the user's ~/.cache.
os.environ["MOMENTUM_JAX_CPU_DEVICES"] = "1"
os.environ["MOMENTUM_JAX_COMPILE_CACHE"] = "off"
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="momentum_jax_tests_")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)
