"""Bad input through the command: one line naming the key (or the path), exit status 2, no traceback.

Every example of the issue that found them ("bad input never crashes and is
never run silently"), each as a user writes it, run as ``momentum-jax sweep
FILE --out DIR`` (or ``check``); and the YAML, size and output-folder faults.
"""

from __future__ import annotations

import errno
import json
import os
import textwrap

import pytest

from momentum_jax import cli
from momentum_jax.runtime import files as _files
from momentum_jax.sweep import _sizes, _yaml

BASE = """\
problem: {name: linear_regression}
optimizer: {name: momentum, learning_rate: 0.1, beta: 0.9}
train: {steps: 10, log_every: 5}
"""


def _run(capsys, *argv) -> tuple[int, str, str]:
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def _refused(capsys, argv, says: str) -> str:
  """Asserts the command fails as the docs promise; returns its one line."""
  code, _, err = _run(capsys, *argv)
  lines = err.strip().splitlines()
  assert code == 2, err
  assert "Traceback" not in err and len(lines) == 1, err
  assert says in lines[0], lines[0]
  assert len(lines[0]) < 600, "a value echoed back whole"
  return lines[0]


def _write(tmp_path, text: str | bytes, name: str = "sweep.yaml"):
  path = tmp_path / name
  (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
  return path


def _with(**sections: str) -> str:
  lines = dict(line.split(": ", 1) for line in BASE.splitlines())
  lines.update(sections)
  return "".join(f"{key}: {value}\n" for key, value in lines.items())


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
  f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)

# (config text, what the one line must say): each of these ran silently,
# wrongly, or ended in a traceback or a message that did not say where.
CASES = {
  "batch_norm a string": (
    _with(problem='{name: digits_mlp, hidden: [8], batch_norm: "false"}'),
    "problem.batch_norm: expected true or false, got 'false'",
  ),
  "beta false": (
    _with(optimizer="{name: momentum, learning_rate: 0.1, beta: false}"),
    "optimizer.beta: expected a number",
  ),
  "adam eps true": (
    _with(optimizer="{name: adam, learning_rate: 0.1, eps: true}"),
    "optimizer.eps: expected a number",
  ),
  "weight_decay true": (
    _with(optimizer="{name: adamw, learning_rate: 0.1, weight_decay: true}"),
    "optimizer.weight_decay: expected a number",
  ),
  "decay_rate true": (
    _with(
      optimizer="{name: sgd, learning_rate: 0.1, schedule: {name: "
      "exponential_decay, decay_rate: true, decay_steps: 5}}"
    ),
    "optimizer.schedule.decay_rate: expected a number",
  ),
  "start booleans": (
    _with(problem="{name: plateau, start: [true, false]}"),
    "problem.start: start must be two finite numbers",
  ),
  "grad_norms maybe": (
    _with(train="{steps: 10, log_every: 5, grad_norms: maybe}"),
    "train.grad_norms: expected true or false, got 'maybe'",
  ),
  "learning_rate true": (
    _with(optimizer="{name: sgd, learning_rate: true}"),
    "optimizer.learning_rate: expected a number",
  ),
  "steps true": (_with(train="{steps: true}"), "train.steps: expected an integer, got True"),
  "a list where a name goes": (
    _with(problem="{name: [digits_mlp]}"),
    "problem.name: expected a problem's name",
  ),
  "a mapping where a name goes": (
    _with(optimizer="{name: {momentum: 1}, learning_rate: 0.1}"),
    "optimizer.name: expected an optimizer's name",
  ),
  "divergence_factor big": (
    _with(train="{steps: 10, log_every: 5, divergence_factor: big}"),
    "train.divergence_factor: expected a number, got 'big'",
  ),
  "linspace count inf": (
    _with(optimizer="{name: sgd, learning_rate: {linspace: [0.1, 1, .inf]}}"),
    "optimizer.learning_rate.linspace[2]: expected an integer, got inf",
  ),
  "linspace count nan": (
    _with(optimizer="{name: sgd, learning_rate: {linspace: [0.1, 1, .nan]}}"),
    "optimizer.learning_rate.linspace[2]: expected an integer, got nan",
  ),
  "linspace count 0": (
    _with(optimizer="{name: sgd, learning_rate: {linspace: [0.1, 1, 0]}}"),
    "optimizer.learning_rate.linspace[2]: must be >= 1, got 0",
  ),
  "hidden -5": (
    _with(problem="{name: digits_mlp, hidden: -5}"),
    "problem.hidden: expected a list, got -5",
  ),
  "beta as 1e-1 passes to tracing": (
    _with(optimizer="{name: momentum, learning_rate: 0.1, beta: '1e-1'}"),
    "optimizer.beta: expected a number",
  ),
  "misspelt key": (
    _with(optimizer="{name: adam, learning_rate: 0.1, beta1: 0.9}"),
    "optimizer.beta1: adam takes no 'beta1'; did you mean 'b1'?",
  ),
  "a long value": (_with(seeds='"' + "x" * 100_000 + '"'), "seeds: expected an integer, got 'xxx"),
  "a long string value": (
    _with(train="{steps: " + "9" * 5000 + "x}"),
    "train.steps: expected an integer",
  ),
  # Sizes, before anything is allocated.
  "seeds a billion": (_with(seeds="1000000000"), "seeds: must be <= 10000, got 1000000000"),
  "a billion-value linspace": (
    _with(optimizer="{name: sgd, learning_rate: {linspace: [0.1, 1, 1000000000]}}"),
    "optimizer.learning_rate: the sweep has 1,000,000,000 configurations",
  ),
  "a billion samples": (
    _with(
      optimizer="{name: sgd, learning_rate: {loguniform: [0.01, 1]}}",
      search="{method: random, samples: 1000000000}",
    ),
    "search.samples: the sweep has 1,000,000,000 configurations",
  ),
  "48 GiB of parameters": (
    _with(problem="{name: digits_mlp, hidden: [100000000]}"),
    "problem: one configuration needs about",
  ),
  # The file itself.
  "a date": (_with(name="2024-05-01"), "line 4, column 7: a date (quote it if it is text)"),
  "a duplicate key": (
    BASE + "train: {steps: 20}\n",
    "line 4, column 1: duplicate key 'train' (first on line 3)",
  ),
  "binary": (_with(name="!!binary aGVsbG8="), "binary data (!!binary) is not allowed"),
  "a python tag": (
    _with(name="!!python/object/apply:os.system [echo hi]"),
    "the tag '!!python/object/apply:os.system'",
  ),
  "a recursive anchor": (
    _with(problem="{name: digits_mlp, hidden: &h [64, *h]}"),
    "an anchor that contains itself",
  ),
  "a billion laughs": (BASE + BILLION_LAUGHS, "aliases expand to more than"),
  "nesting deeper than the recursion limit": (
    _with(name="[" * 5000 + "]" * 5000),
    f"nested deeper than {_yaml.MAX_DEPTH} levels",
  ),
  "not UTF-8": (BASE.encode() + b"name: caf\xe9\n", "is not UTF-8 text (byte 0xe9"),
  "not a mapping": ("- 1\n- 2\n", "expected a mapping of keys to values"),
  "not YAML": ("problem: [unclosed\n", "(not valid YAML)"),
}


@pytest.mark.parametrize("text, says", CASES.values(), ids=CASES.keys())
def test_bad_configs_are_one_line_and_exit_2(tmp_path, capsys, text, says):
  path = _write(tmp_path, text)
  line = _refused(capsys, ["sweep", path, "--out", tmp_path / "out", "--quiet"], says)
  if says.startswith("line") or "UTF-8" in says or "mapping of keys" in says:
    assert str(path) in line  # the file is named
  assert not (tmp_path / "out" / "chunks").exists()  # refused before anything is written


@pytest.mark.parametrize("text, says", [CASES["beta false"], CASES["a duplicate key"]])
def test_check_refuses_as_sweep_does(tmp_path, capsys, text, says):
  _refused(capsys, ["check", _write(tmp_path, text)], says)


def test_yaml_1_2_numbers_are_numbers_and_check_passes(tmp_path, capsys):
  text = _with(optimizer="{name: momentum, learning_rate: [1e-3, 1E-2, .5], beta: 1e-1}")
  code, out, err = _run(capsys, "check", _write(tmp_path, text))
  assert code == 0 and err == "" and "ok, 3 configurations" in out


def test_force_lets_a_large_sweep_past_the_size_check(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(_sizes, "MAX_CONFIGS", 2)
  path = _write(tmp_path, _with(seeds="3"))
  _refused(capsys, ["check", path], "seeds: the sweep has 3 configurations")
  code, out, _ = _run(capsys, "check", path, "--force")
  assert code == 0 and "ok, 3 configurations" in out


def test_the_config_path_a_folder_or_missing(tmp_path, capsys):
  _refused(capsys, ["sweep", tmp_path], f"{tmp_path}: is a folder; give the path of a YAML")
  _refused(capsys, ["check", tmp_path / "missing.yaml"], "missing.yaml: No such file")


def test_schema_prints_the_json_schema(capsys):
  code, out, _ = _run(capsys, "schema")
  schema = json.loads(out)
  assert code == 0 and schema["type"] == "object" and "train" in schema["required"]
  assert set(schema["properties"]) >= {
    "problem",
    "optimizer",
    "optimizers",
    "train",
    "search",
    "seeds",
    "chunk_size",
    "name",
  }


def test_the_docs_schema_is_the_schema():
  """docs/sweep-config.schema.json is `momentum-jax schema`'s output: regenerate it when this fails."""
  from momentum_jax.sweep import _schema

  with open(os.path.join(os.path.dirname(__file__), "..", "docs", "sweep-config.schema.json")) as f:
    assert json.load(f) == _schema.json_schema()


def test_the_train_section_has_train_configs_fields():
  import dataclasses
  from momentum_jax.sweep import _schema
  from momentum_jax.train import TrainConfig

  fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
  section = {name: f.default for name, f in _schema.TrainSection.model_fields.items()}
  assert section.keys() == fields.keys()
  assert {k: v for k, v in section.items() if k != "steps"} == {
    k: v for k, v in fields.items() if k != "steps"
  }


# ------------------------------------------------------------------ the output folder


def _folder_cases(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("mine")
  manifest_folder = tmp_path / "manifest_folder"
  (manifest_folder / "manifest.json").mkdir(parents=True)
  bad_manifest = tmp_path / "bad_manifest"
  bad_manifest.mkdir()
  (bad_manifest / "manifest.json").write_text("{not json")
  chunks_file = tmp_path / "chunks_file"
  chunks_file.mkdir()
  (chunks_file / "chunks").write_text("")
  return {
    "an existing file": (a_file, "a_file: not a folder"),
    "/dev/null": (os.devnull, "/dev/null: not a folder"),
    "manifest.json a folder": (manifest_folder, "manifest.json: a folder where a sweep keeps"),
    "manifest.json not JSON": (bad_manifest, "manifest.json: not valid JSON"),
    "chunks a file": (chunks_file, "chunks: a file where a sweep keeps its folder"),
  }


@pytest.mark.parametrize(
  "case",
  [
    "an existing file",
    "/dev/null",
    "manifest.json a folder",
    "manifest.json not JSON",
    "chunks a file",
  ],
)
def test_output_folder_faults_are_named(tmp_path, capsys, case):
  out, says = _folder_cases(tmp_path)[case]
  _refused(capsys, ["sweep", _write(tmp_path, BASE), "--out", out, "--quiet"], says)
  assert (tmp_path / "a_file").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_a_read_only_output_folder_is_named(tmp_path, capsys):
  out = tmp_path / "read_only"
  out.mkdir(mode=0o500)
  _refused(
    capsys,
    ["sweep", _write(tmp_path, BASE), "--out", out, "--quiet"],
    "read_only: cannot write there",
  )


def test_a_folder_that_refuses_writes_is_named(tmp_path, capsys, monkeypatch):
  """As a read-only folder does for any user but root (who is refused by a read-only mount)."""
  from momentum_jax.sweep import _checkpoint

  def refused(**kwargs):
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

  monkeypatch.setattr(_checkpoint.tempfile, "TemporaryFile", refused)
  _refused(
    capsys,
    ["sweep", _write(tmp_path, BASE), "--out", tmp_path / "out", "--quiet"],
    "out: cannot write there (Permission denied); choose another output folder",
  )


def test_a_full_disk_is_named_and_keeps_the_finished_chunks(tmp_path, capsys, monkeypatch):
  config = _write(
    tmp_path, BASE.replace("learning_rate: 0.1", "learning_rate: [0.1, 0.2, 0.3, 0.4]")
  )
  out, chunked = tmp_path / "o", ["--quiet", "--chunk-size", "2", "--width", "1"]
  assert _run(capsys, "sweep", config, "--out", out, *chunked)[0] == 0  # chunks of 2 (2 devices)
  chunks = {p.name: p.read_bytes() for p in (out / "chunks").iterdir()}
  assert sum(name.endswith(".npz") for name in chunks) == 2
  (out / "chunks" / sorted(n for n in chunks if n.endswith(".npz"))[-1]).unlink()

  def full(path, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

  monkeypatch.setattr(_files, "atomic_write_bytes", full)
  line = _refused(
    capsys, ["sweep", config, "--out", out, *chunked], "No space left on device; free some space"
  )
  assert str(out) in line
  left = {p.name: p.read_bytes() for p in (out / "chunks").iterdir()}
  assert all(left[name] == data for name, data in chunks.items() if name in left)
  assert len([n for n in left if n.endswith(".npz")]) == 1  # the good chunk kept


def test_the_docs_say_configs_are_code():
  page = open(os.path.join(os.path.dirname(__file__), "..", "docs", "sweeps.md")).read()
  assert "os:system" in page and "momentum-jax check" in page
  assert "momentum-jax schema" in page


def test_an_import_path_runs_the_named_code(tmp_path, capsys, monkeypatch):
  """As docs/sweeps.md says: resolving ``package.module:function`` imports (runs) that module."""
  (tmp_path / "side_effect.py").write_text(
    textwrap.dedent("""\
      import pathlib
      pathlib.Path("imported").write_text("ran")
      optimizer = None
      """)
  )
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(str(tmp_path))
  path = _write(tmp_path, _with(optimizer="{name: 'side_effect:optimizer', learning_rate: 0.1}"))
  _refused(capsys, ["check", path], "optimizer.name: side_effect:optimizer is not callable")
  assert (tmp_path / "imported").read_text() == "ran"
