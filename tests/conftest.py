import os
import sys

# Tests import their shared helpers (tests/_problems.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))
