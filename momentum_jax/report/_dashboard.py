"""``momentum-jax dashboard DIR``: optuna-dashboard on a sweep's ``optuna.journal``.

The journal is the record :func:`momentum_jax.report.save` writes
(:mod:`momentum_jax.report._journal`); optuna-dashboard, the ``dashboard``
extra, serves it on the loopback interface only.
"""

from __future__ import annotations

import os
from pathlib import Path

from momentum_jax import results


def serve_dashboard(out_dir: str | os.PathLike, port: int = 8080) -> None:
  """Serves optuna-dashboard on ``http://127.0.0.1:<port>/`` for ``out_dir``'s journal, until Ctrl-C.

  A result saved without Optuna (or by an older version) has no journal
  yet: it is recorded first (:func:`momentum_jax.report._journal.write_journal`), from the result's files.

  Raises:
    ModuleNotFoundError: Without optuna-dashboard, naming the extra to install.
    FileNotFoundError: If ``out_dir`` holds neither a journal nor a result.
  """
  try:
    import optuna_dashboard
  except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
      "the dashboard needs optuna-dashboard: pip install 'momentum_jax[dashboard]'", name=error.name
    ) from None
  import optuna
  from optuna.storages.journal import JournalFileBackend
  from momentum_jax.report import _journal  # Optuna and the sweep's modules only when asked

  path = Path(out_dir) / _journal.JOURNAL_FILE
  if not path.is_file():
    _journal.write_journal(results.load_results(out_dir), out_dir)
  storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
  print(f"optuna-dashboard for {path} on http://127.0.0.1:{port}/ (Ctrl-C stops it)", flush=True)
  optuna_dashboard.run_server(storage, host="127.0.0.1", port=port)
