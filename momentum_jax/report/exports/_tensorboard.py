"""A sweep in TensorBoard: a run folder per configuration, its seeds one HParams session group.

Each configuration's folder (``config_<id>`` under the log folder) holds
every logged metric as a scalar at its step, written with tensorboardX's
event files (no TensorFlow), and an HParams session: its optimizer and hyperparameters,
grouped with its other seeds by :attr:`Configuration.setting` (the HParams
view shows a group's metrics over its seeds), ended as failed where it
diverged. TensorBoard's HParams plugin builds the table from the sessions;
``tensorboard --logdir FOLDER`` shows it.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from momentum_jax.report.exports._common import Configuration, Tracker, require

# The HParams plugin's tags and data version (tensorboard/plugins/hparams/metadata.py).
_PLUGIN = "hparams"
_START, _END = "_hparams_/session_start_info", "_hparams_/session_end_info"


class _EventFile:
  """A run folder's event file, each event written when added: tensorboardX's
  ``SummaryWriter`` writes from a thread whose queue its ``flush`` does not wait for, so a
  reader at a segment boundary could miss the segment's last steps.

  ``purge_step``: TensorBoard hides the folder's earlier events from this step on (a
  restart's mark, as ``SummaryWriter(purge_step=...)`` writes it).
  """

  def __init__(self, folder: Path, purge_step: int | None):
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import SessionLog

    folder.mkdir(parents=True, exist_ok=True)
    self.file = EventsWriter(str(folder / "events"))
    if purge_step is not None:
      start = SessionLog(status=SessionLog.START)
      self.file.write_event(self._event(step=purge_step, session_log=start))

  def add(self, summary, step: int = 0) -> None:
    self.file.write_event(self._event(wall_time=time.time(), step=step, summary=summary))

  @staticmethod
  def _event(**fields):
    from tensorboardX.proto.event_pb2 import Event

    return Event(**fields)


class TensorBoard(Tracker):
  """Writes configurations' runs under ``uri`` (default ``out_dir/tensorboard``).

  ``live``: a running sweep's log, whose runs may be in the folder already (a
  resumed sweep's unfinished batch, logged in part before the sweep was
  killed): their steps from the first one written again are replaced
  (tensorboardX's ``purge_step``). Otherwise a run already there is refused.
  """

  label = "TensorBoard"

  def __init__(
    self, out_dir: str | os.PathLike, sweep_name: str, uri: str | None = None, live: bool = False
  ):
    super().__init__(live)
    require("tensorboardX", "tensorboard", self.label)
    self.root = Path(uri) if uri else Path(out_dir) / "tensorboard"

  def _start(self, config: Configuration) -> _EventFile:
    folder = self.root / config.run_name
    purge = None
    if folder.exists():
      if not self.live:  # a second export would show every curve twice
        raise FileExistsError(
          errno.EEXIST,
          f"already holds configuration {config.config_id}'s TensorBoard run; "
          "remove the folder or export to another one",
          str(folder),
        )
      purge = int(config.steps[0]) if len(config.steps) else None
    run = _EventFile(folder, purge)
    run.add(self._session_start(config))
    return run

  def _write(self, run: _EventFile, config: Configuration) -> None:
    from tensorboardX.summary import scalar

    for name, values in config.metrics.items():
      for step, value in zip(config.steps, values):
        run.add(scalar(name, float(value)), int(step))

  def _flush(self, run: _EventFile) -> None:
    run.file.flush()

  def _end(self, run: _EventFile, config: Configuration) -> None:
    run.add(self._session_end(config))
    run.file.close()

  def close(self, out_dir: str | os.PathLike) -> None:
    """Nothing left to write: each run folder is complete once logged."""

  def where(self) -> str:
    return f"TensorBoard runs in {self.root}/: tensorboard --logdir {self.root}"

  def _summary(self, tag: str, **data):
    from tensorboardX.proto import plugin_hparams_pb2, summary_pb2

    content = plugin_hparams_pb2.HParamsPluginData(version=0, **data).SerializeToString()
    metadata = summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=_PLUGIN, content=content)
    )
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata)])

  def _session_start(self, config: Configuration):
    from tensorboardX.proto import plugin_hparams_pb2

    start = plugin_hparams_pb2.SessionStartInfo(group_name=config.setting)
    start.hparams["optimizer"].string_value = config.optimizer
    for name, value in config.hyperparameters.items():
      start.hparams[name].number_value = value
    return self._summary(_START, session_start_info=start)

  def _session_end(self, config: Configuration):
    from tensorboardX.proto import api_pb2, plugin_hparams_pb2

    status = api_pb2.Status.Value("STATUS_FAILURE" if config.diverged else "STATUS_SUCCESS")
    return self._summary(_END, session_end_info=plugin_hparams_pb2.SessionEndInfo(status=status))
