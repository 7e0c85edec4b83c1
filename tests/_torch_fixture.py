"""The recorded torch runs (``fixtures/torch_reference.npz``, written by
``fixtures/make_torch_reference.py``, which documents its contents), loaded once.
"""

from __future__ import annotations

import json
import os

import numpy as np


_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "torch_reference.npz")

with np.load(_FIXTURE) as _npz:
  DATA = {key: _npz[key] for key in _npz.files}
META = json.loads(str(DATA.pop("meta")))
STEPS = META["steps"]
OPTIMIZER_CASES = META["optimizers"]
SCHEDULE_CASES = META["schedules"]
