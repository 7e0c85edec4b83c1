"""A sweep in TensorBoard: a run folder per configuration, its seeds one HParams session group.

Each configuration's folder (``config_<id>`` under the log folder) holds
every logged metric as a scalar at its step, written with tensorboardX (no
TensorFlow), and an HParams session: its optimizer and hyperparameters,
grouped with its other seeds by :attr:`Configuration.setting` (the HParams
view shows a group's metrics over its seeds), ended as failed where it
diverged. TensorBoard's HParams plugin builds the table from the sessions;
``tensorboard --logdir FOLDER`` shows it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from momentum_jax.report.exports._common import Configuration, configurations, require
from momentum_jax.results import SweepResult

# The HParams plugin's tags and data version (tensorboard/plugins/hparams/metadata.py).
_PLUGIN = "hparams"
_START, _END = "_hparams_/session_start_info", "_hparams_/session_end_info"


class TensorBoard:
  """Writes configurations' runs under ``uri`` (default ``out_dir/tensorboard``)."""

  label = "TensorBoard"

  def __init__(self, out_dir: str | os.PathLike, sweep_name: str, uri: str | None = None):
    self._tbx = require("tensorboardX", "tensorboard", self.label)
    self.root = Path(uri) if uri else Path(out_dir) / "tensorboard"

  def log(self, result: SweepResult) -> None:
    """Writes a run folder for each configuration of ``result``; none may exist yet."""
    for config in configurations(result):
      folder = self.root / config.run_name
      if folder.exists():  # a second export would show every curve twice
        raise FileExistsError(
          errno.EEXIST,
          f"already holds configuration {config.config_id}'s TensorBoard run; "
          "remove the folder or export to another one",
          str(folder),
        )
      with self._tbx.SummaryWriter(str(folder)) as writer:
        writer.file_writer.add_summary(self._session_start(config))
        for name, values in config.metrics.items():
          for step, value in zip(config.steps, values):
            writer.add_scalar(name, float(value), int(step))
        writer.file_writer.add_summary(self._session_end(config))

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
