"""The CLI's error boundary: every bad invocation of every command is one line and an exit code.

The table runs ``janus_build.cli.main`` in-process (as the console script does), so what is
checked is exactly what a user sees on stderr; a few cases run ``python -m janus_build`` to see
the real, non-terminal stderr.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from janus_build.cli import main

SIZE = 16
TRAIN = {"arch": "tiny", "epochs": 1, "batch_size": 4, "image_size": SIZE, "workers": 0, "device": "cpu"}
TRAIN_ARGS = [
    "--arch",
    "tiny",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--image-size",
    str(SIZE),
    "--workers",
    "0",
    "--device",
    "cpu",
]


def _invoke(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``janus ARGS`` as the console script does; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as caught:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    code = caught.value.code
    return (0 if code is None else int(code)), out, err


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Crash logs go to the test's own directory, never to the user's ~/.local/state."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny inputs of every kind: image stage, match output, training shards, broken files, loops."""
    from tag_fixtures import make_match_output, make_stage

    from janus_build.demo.eval_sets import write_synthetic_shards
    from janus_build.train.loop import TrainConfig, train

    root = tmp_path_factory.mktemp("world")
    paths = {
        "stage": make_stage(root / "fetch", {2: 3, 6: 2}, shards=1, size=SIZE),
        "match": make_match_output(root / "match", {2: 2, 6: 2}),
        "shards": write_synthetic_shards(root / "balanced", per_class=2, size=SIZE, shards=1),
        "empty": root / "empty",
        "missing": root / "no" / "such" / "thing",
        "nonempty": root / "nonempty",
        "run": root / "run",
    }
    paths["empty"].mkdir()
    paths["nonempty"].mkdir()
    (paths["nonempty"] / "keep.txt").write_text("mine\n")
    # A training run whose last checkpoint was cut short (a full disk, a killed copy).
    train(TrainConfig(**{**TRAIN, "shards": (str(paths["shards"]),), "out": str(paths["run"])}))
    last = paths["run"] / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    paths["corrupt_pt"] = root / "corrupt.pt"
    paths["corrupt_pt"].write_bytes(b"\x80\x02 not a checkpoint")
    paths["bad_toml"] = root / "bad.toml"
    paths["bad_toml"].write_text('[[class]]\nid = "two"\nname = ""\nqueries = []\n')
    paths["bad_labels"] = root / "labels.tsv"
    paths["bad_labels"].write_text("class_id\tname\nfour\tlion\n")
    loops = root / "loops"
    loops.mkdir()
    os.symlink("b.parquet", loops / "a.parquet")
    os.symlink("a.parquet", loops / "b.parquet")
    os.symlink("b.tar", loops / "a.tar")
    os.symlink("a.tar", loops / "b.tar")
    paths["loop_parquet"] = loops / "a.parquet"
    paths["loop_tar"] = loops / "a.tar"
    paths["loops"] = loops
    paths["afile"] = root / "afile.txt"  # an --out below a file: the OS answers ENOTDIR
    paths["afile"].write_text("not a directory\n")
    paths["folders"] = root / "folders"
    (paths["folders"] / "n01440764").mkdir(parents=True)
    return paths


def _sample() -> str:
    from janus_build.resources import package_data

    return str(package_data("sample_captions.parquet"))


# (id, argv with {placeholders} for world paths / {out}, exit code, text the message must hold)
USAGE = 2
USAGE_CASES = [
    ("unknown-command", ["bogus"], "No such command 'bogus'"),
    ("unknown-option", ["match", "--no-such-flag"], "--no-such-flag"),
    ("match-missing-out", ["match", "--sample"], "--out"),
    ("match-workers-abc", ["match", "--sample", "--out", "{out}", "--workers", "abc"], "--workers"),
    ("match-max-ngram-abc", ["match", "--sample", "--out", "{out}", "--max-ngram", "x"], "--max-ngram"),
    ("train-epochs-abc", ["train", "{shards}", "--out", "{out}", "--epochs", "abc"], "--epochs"),
    ("train-missing-shards", ["train", "--out", "{out}"], "Missing argument 'SHARD'"),
    ("train-lr-abc", ["train", "{shards}", "--out", "{out}", "--lr", "fast"], "--lr"),
    ("fetch-missing-out", ["fetch"], "--out"),
    ("fetch-per-class-abc", ["fetch", "--out", "{out}", "--per-class", "x"], "--per-class"),
    ("fetch-timeout-abc", ["fetch", "--out", "{out}", "--timeout", "soon"], "--timeout"),
    ("tag-unknown", ["tag", "bogus"], "No such command 'bogus'"),
    ("tag-serve-missing-dir", ["tag", "serve"], "Missing argument 'STAGE_DIR'"),
    ("tag-serve-port-99999", ["tag", "serve", "{stage}", "--port", "99999"], "--port"),
    ("tag-serve-port-0", ["tag", "serve", "{stage}", "--port", "0"], "--port"),
    ("tag-serve-overlap-abc", ["tag", "serve", "{stage}", "--overlap", "lots"], "--overlap"),
    ("tag-audit-port", ["tag", "audit", "{match}", "--port", "70000"], "--port"),
    ("tag-audit-per-class-abc", ["tag", "audit", "{match}", "--per-class", "x"], "--per-class"),
    ("tag-export-missing-out", ["tag", "export", "{stage}"], "--out"),
    ("tag-stats-missing-dir", ["tag", "stats"], "Missing argument 'STAGE_DIR'"),
    ("caption-missing-out", ["caption", "{stage}"], "--out"),
    ("caption-batch-size-abc", ["caption", "{stage}", "--out", "{out}", "--batch-size", "big"], "--batch-size"),
    ("balance-missing-out", ["balance", "x"], "--out"),
    ("balance-budget-no-value", ["balance", "--out", "{out}", "--budget"], "--budget"),
    ("balance-seed-abc", ["balance", "--out", "{out}", "--seed", "s"], "--seed"),
    ("eval-batch-size-abc", ["eval", "--batch-size", "x"], "--batch-size"),
    ("import-unknown", ["import", "bogus"], "No such command 'bogus'"),
    ("import-folders-missing-layout", ["import", "folders", "{folders}", "--out", "{out}"], "--layout"),
    ("import-img2dataset-missing-out", ["import", "img2dataset", "{empty}"], "--out"),
    ("import-url-list-missing-out", ["import", "url-list", "{match}"], "--out"),
    ("demo-per-class-abc", ["demo", "--per-class", "many"], "--per-class"),
    ("demo-port", ["demo", "--port", "70000"], "--port"),
    ("queries-check-missing-file", ["queries", "check"], "Missing argument 'FILE'"),
    ("verbose-abc", ["--verbose=abc", "match"], "--verbose"),
    ("label-missing-out", ["label", "{stage}"], "--out"),
    ("label-threshold-abc", ["label", "{stage}", "--out", "{out}", "--threshold", "high"], "--threshold"),
    ("report-missing-out", ["report", "{run}"], "--out"),
    ("report-missing-runs", ["report", "--out", "{out}"], "Missing argument"),
    ("dedup-missing-out", ["dedup", "{stage}", "--eval", "v={folders}"], "--out"),
    (
        "import-openimages-missing-out",
        ["import", "openimages", "--images-csv", "{missing}", "--labels-csv", "{missing}"],
        "--out",
    ),
    ("dedup-missing-stage", ["dedup", "--out", "{out}"], "Missing argument"),
]

ONE_LINE_CASES = [
    ("match-strategy", ["match", "--sample", "--out", "{out}", "--strategy", "bogus"], 2, "--strategy"),
    ("match-missing-input", ["match", "{missing}", "--out", "{out}"], 2, "{missing}"),
    ("match-bad-labels", ["match", "--sample", "--out", "{out}", "--labels", "{bad_labels}"], 2, "{bad_labels}"),
    ("match-no-input", ["match", "--out", "{out}"], 2, "INPUT"),
    ("match-symlink-loop", ["match", "{loop_parquet}", "--out", "{out}"], 2, "{loop_parquet}"),
    ("match-out-not-empty", ["match", "--sample", "--out", "{nonempty}"], 2, "{nonempty}"),
    ("balance-no-source", ["balance", "--out", "{out}"], 2, "SOURCE"),
    ("balance-bad-source", ["balance", "name", "--out", "{out}"], 2, "SOURCE"),
    ("balance-missing-images", ["balance", "name=a,images={missing},labels=ground_truth", "--out", "{out}"], 2, "{missing}"),
    ("balance-budget-nanx", ["balance", "name=a,images={shards},labels=ground_truth", "--out", "{out}", "--budget", "nanx"], 2, "--budget"),
    ("balance-budget-infx", ["balance", "name=a,images={shards},labels=ground_truth", "--out", "{out}", "--budget", "infx"], 2, "--budget"),
    ("balance-budget-negative", ["balance", "name=a,images={shards},labels=ground_truth", "--out", "{out}", "--budget", "-1x"], 2, "--budget"),
    ("balance-budget-zero", ["balance", "name=a,images={shards},labels=ground_truth", "--out", "{out}", "--budget", "0"], 2, "--budget"),
    ("balance-val-fraction", ["balance", "name=a,images={shards},labels=ground_truth", "--out", "{out}", "--val-fraction", "2"], 2, "--val-fraction"),
    ("train-label-smoothing", ["train", "{shards}", "--out", "{out}", "--label-smoothing", "5", "--device", "cpu"], 2, "--label-smoothing"),
    ("train-epochs-zero", ["train", "{shards}", "--out", "{out}", "--epochs", "0", "--device", "cpu"], 2, "--epochs"),
    ("train-missing-shards", ["train", "{missing}", "--out", "{out}", "--device", "cpu"], 2, "{missing}"),
    ("train-symlink-loop", ["train", "{loop_tar}", "--out", "{out}", "--device", "cpu"], 2, "{loop_tar}"),
    ("train-symlink-loop-in-dir", ["train", "{loops}", "--out", "{out}", "--device", "cpu"], 2, "a symbolic link loop"),
    ("train-resume-truncated", ["train", "{shards}", "--out", "{run}", "--resume", *TRAIN_ARGS], 2, "last.pt"),
    ("eval-corrupt-checkpoint", ["eval", "{corrupt_pt}", "--imagenet-val", "{folders}", "--device", "cpu"], 2, "{corrupt_pt}"),
    ("eval-missing-checkpoint", ["eval", "{missing}", "--imagenet-val", "{folders}", "--device", "cpu"], 2, "{missing}"),
    ("fetch-missing-queries", ["fetch", "--out", "{out}", "--queries", "{missing}"], 2, "{missing}"),
    ("fetch-classes-abc", ["fetch", "--out", "{out}", "--classes", "a,b"], 2, "--classes"),
    ("queries-check-bad", ["queries", "check", "{bad_toml}"], 2, "{bad_toml}"),
    ("queries-check-missing", ["queries", "check", "{missing}"], 2, "{missing}"),
    ("tag-serve-missing-dir", ["tag", "serve", "{missing}"], 2, "{missing}"),
    ("tag-serve-grid-size", ["tag", "serve", "{stage}", "--grid-size", "50"], 2, "--grid-size"),
    ("tag-serve-remote-host", ["tag", "serve", "{stage}", "--host", "0.0.0.0"], 2, "--host"),
    ("tag-stats-no-queue", ["tag", "stats", "{empty}"], 2, "no tagging queue"),
    ("tag-export-no-queue", ["tag", "export", "{empty}", "--out", "{out}"], 2, "no tagging queue"),
    ("tag-audit-missing", ["tag", "audit", "{missing}", "--no-serve"], 2, "{missing}"),
    ("caption-missing-stage", ["caption", "{missing}", "--out", "{out}"], 2, "{missing}"),
    ("import-folders-missing-root", ["import", "folders", "{missing}", "--out", "{out}", "--layout", "wnid"], 2, "{missing}"),
    ("import-folders-layout", ["import", "folders", "{folders}", "--out", "{out}", "--layout", "weird"], 2, "--layout"),
    ("import-img2dataset-missing", ["import", "img2dataset", "{missing}", "--out", "{out}"], 2, "{missing}"),
    ("import-url-list-missing", ["import", "url-list", "{missing}", "--out", "{out}"], 2, "{missing}"),
    ("demo-out-not-empty", ["demo", "--out", "{nonempty}"], 2, "--out"),
    ("demo-classes-abc", ["demo", "--out", "{out}", "--classes", "x"], 2, "--classes"),
    ("dedup-no-eval", ["dedup", "{stage}", "--out", "{out}"], 2, "--eval"),
    ("import-imagenet-captions-missing", ["import", "imagenet-captions", "{missing}", "--imagenet", "{folders}", "--out", "{out}"], 2, "{missing}"),
    ("import-yfcc-missing", ["import", "yfcc", "{missing}", "--out", "{out}"], 2, "{missing}"),
    ("import-laion-missing", ["import", "laion", "{missing}", "--out", "{out}"], 2, "{missing}"),
    ("dedup-missing-eval", ["dedup", "{stage}", "--eval", "v={missing}", "--out", "{out}"], 2, "{missing}"),
    ("dedup-eval-no-images", ["dedup", "{stage}", "--eval", "v={folders}", "--out", "{out}"], 2, "holds no images"),
    ("dedup-max-phash", ["dedup", "{stage}", "--eval", "v={folders}", "--out", "{out}", "--max-phash", "40"], 2, "--max-phash"),
    ("label-bad-model", ["label", "{stage}", "--out", "{out}", "--model", "clip"], 2, "--model"),
    ("report-no-metrics", ["report", "{empty}", "--out", "{out}"], 2, "no metrics"),
    # The operating system refuses the output (exit 1), whatever the stage.
    ("match-out-below-a-file", ["match", "--sample", "--out", "{afile}/o"], 1, "{afile}/o: not a directory"),
    ("balance-out-below-a-file", ["balance", "name=a,images={shards},labels=ground_truth", "--out", "{afile}/o"], 1, "{afile}/o: not a directory"),
    ("train-out-below-a-file", ["train", "{shards}", "--out", "{afile}/o", *TRAIN_ARGS], 1, "{afile}/o: not a directory"),
    ("demo-out-below-a-file", ["demo", "--out", "{afile}/o"], 1, "{afile}/o: not a directory"),
    ("tag-serve-db-below-a-file", ["tag", "serve", "{stage}", "--db", "{afile}/q.sqlite"], 1, "{afile}"),
]  # fmt: skip


def _fill(args: list[str], world: dict[str, Path], out: Path) -> list[str]:
    values = {name: str(path) for name, path in world.items()} | {"out": str(out)}
    return [a.format(**values) for a in args]


def _registered() -> set[str]:
    from typer.main import get_command

    from janus_build.cli import app

    return set(get_command(app).commands)  # type: ignore[attr-defined]


OPTIONAL_COMMANDS = {"label", "report"}  # newer commands: their cases run wherever they are registered


def _params(cases: list[tuple]) -> list:
    """One pytest.param per case; cases of an optional command this checkout lacks are skipped."""
    missing = OPTIONAL_COMMANDS - _registered()
    first = [next((a for a in c[1] if not a.startswith("-")), "") for c in cases]
    return [
        pytest.param(*c[1:], id=c[0], marks=pytest.mark.skipif(name in missing, reason=f"no janus {name} here"))
        for c, name in zip(cases, first)
    ]


@pytest.mark.parametrize(("args", "needle"), _params(USAGE_CASES))
def test_usage_errors_are_a_usage_line_and_one_message(args, needle, world, tmp_path, capsys):
    code, out, err = _invoke(_fill(args, world, tmp_path / "out"), capsys)
    assert code == USAGE, err
    lines = _lines(err)
    assert lines[0].startswith("Usage: janus"), err
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], err
    assert lines == [lines[0], *lines[1:-1], errors[0]] and len(lines) <= 3, err  # usage, "Try ...", error
    assert "Traceback" not in out + err


@pytest.mark.parametrize(("args", "code", "needle"), _params(ONE_LINE_CASES))
def test_user_errors_are_one_line_naming_the_flag_or_path(args, code, needle, world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FLICKR_API_KEY", "k-0123456789")
    monkeypatch.setenv("FLICKR_API_SECRET", "s-0123456789")
    got, out, err = _invoke(_fill(args, world, tmp_path / "out"), capsys)
    needle = _fill([needle], world, tmp_path / "out")[0]
    errors = [line for line in _lines(err) if line.startswith("error:")]
    assert len(errors) == 1, err
    assert needle in errors[0], err
    assert "internal error" not in errors[0], err
    assert got == (code if code is not None else got) and got != 0, err
    assert "Traceback" not in out + err
    assert not (tmp_path / "state").exists()  # no crash log: nothing here is a bug


def test_table_covers_every_command():
    from typer.main import get_command

    from janus_build.cli import app

    def leaves(command, prefix=()):
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            return {" ".join(prefix)}
        return set().union(*(leaves(c, (*prefix, name)) for name, c in subcommands.items()))

    commands = leaves(get_command(app))
    covered = {
        " ".join(a for a in args[:2] if not a.startswith(("-", "{"))) for _, args, *_ in USAGE_CASES + ONE_LINE_CASES
    }
    covered |= {c.split()[0] for c in covered}
    assert len(USAGE_CASES) + len(ONE_LINE_CASES) >= 40
    assert commands <= covered, commands - covered


def test_a_janus_error_is_not_wrapped_when_stderr_is_a_pipe(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "captions.parquet"
    result = subprocess.run(
        [sys.executable, "-m", "janus_build", "match", str(deep), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
    )
    assert result.returncode == 2
    assert _lines(result.stderr) == [f"error: INPUT {deep}: no such file, directory or glob match"]


def test_a_usage_error_through_the_console_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "janus_build", "match", "--sample", "--workers", "abc", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Usage: janus match") and "Error: Invalid value for '--workers'" in result.stderr


# --- internal errors, the machine's errors, Ctrl-C -----------------------------------------


def _failing_match(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    import janus_build.match as match

    def run_match(config, progress=None):
        raise exc

    monkeypatch.setattr(match, "run_match", run_match)


def test_an_unexpected_exception_is_one_line_and_a_log_file_with_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLICKR_API_KEY", "secret-key-0123")
    _failing_match(monkeypatch, RuntimeError("the matcher fell over\nwith secret-key-0123 in it"))
    code, out, err = _invoke(["match", "--sample", "--out", tmp_path / "o"], capsys)
    assert code == 1
    lines = _lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: internal error (RuntimeError: the matcher fell over")
    logs = list((tmp_path / "state" / "janus" / "logs").glob("janus-*.log"))
    assert len(logs) == 1 and lines[0].endswith(f"; the traceback is in {logs[0]}")
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "in run_match" in text and "janus match --sample" in text
    assert "secret-key-0123" not in text + err and "Traceback" not in out + err
    assert oct(logs[0].stat().st_mode & 0o777) == "0o600"


def test_the_log_falls_back_to_the_temp_dir_when_the_state_dir_cannot_be_written(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the log directory should be")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    _failing_match(monkeypatch, KeyError("column"))
    code, _, err = _invoke(["match", "--sample", "--out", tmp_path / "o"], capsys)
    logs = list((tmp_path / "tmp").glob("janus-*.log"))
    assert code == 1 and len(logs) == 1 and str(logs[0]) in err and "KeyError" in err


@pytest.mark.parametrize(
    ("number", "words", "advice"),
    [
        (errno.ENOSPC, "disk full", "free space or choose another --out"),
        (errno.EROFS, "read-only file system", "choose a writable --out"),
        (errno.EACCES, "permission denied", "permissions"),
        (errno.EDQUOT, "disk quota exceeded", "free space"),
    ],
)
def test_a_write_refused_by_the_machine_is_one_line_naming_the_path(
    number, words, advice, tmp_path, monkeypatch, capsys
):
    target = tmp_path / "o" / "00000.parquet"
    _failing_match(monkeypatch, OSError(number, os.strerror(number), str(target)))
    code, out, err = _invoke(["match", "--sample", "--out", tmp_path / "o"], capsys)
    lines = _lines(err)
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {target}: {words}"), err
    assert advice in lines[0], err
    assert "Traceback" not in out + err and not (tmp_path / "state").exists()


def _chained(explicit: bool) -> Exception:
    try:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/00001.tar")
    except OSError as full:
        if explicit:
            error = RuntimeError("shard 1 failed")
            error.__cause__ = full
            return error
        try:
            raise KeyError("a bug while cleaning up")
        except KeyError as bug:
            return bug


def test_an_error_raised_from_a_full_disk_is_the_full_disk_but_a_bug_while_handling_one_is_a_bug(capsys, monkeypatch):
    _failing_match(monkeypatch, _chained(explicit=True))
    code, _, err = _invoke(["match", "--sample", "--out", "o"], capsys)
    assert code == 1 and _lines(err) == [
        "error: /data/out/00001.tar: disk full (No space left on device); free space or choose another --out"
    ]
    _failing_match(monkeypatch, _chained(explicit=False))
    code, _, err = _invoke(["match", "--sample", "--out", "o"], capsys)
    assert code == 1 and _lines(err)[0].startswith("error: internal error (KeyError: 'a bug while cleaning up')")


def test_a_full_disk_during_a_real_write_names_the_output(tmp_path, monkeypatch, capsys):
    """pyarrow reports a full disk as OSError(ENOSPC) without a file name: the line names --out."""
    import pyarrow.parquet as parquet

    from janus_build.demo.images import class_image

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    tree = tmp_path / "tree" / "n01440764"
    tree.mkdir(parents=True)
    (tree / "a.jpg").write_bytes(class_image(0, 0, SIZE))
    monkeypatch.setattr(parquet.ParquetWriter, "write_table", full)
    monkeypatch.setattr(parquet, "write_table", full)
    out = tmp_path / "o"
    args = ["import", "folders", tmp_path / "tree", "--out", out, "--layout", "wnid", "--labels", "in1k"]
    code, _, err = _invoke(args, capsys)
    lines = [line for line in _lines(err) if not line.startswith("import images")]  # the progress bar
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"error: writing --out {out}: disk full (Error writing bytes"), err
    assert lines[0].endswith("; free space or choose another --out"), err
    assert not (tmp_path / "state").exists()


def test_a_symlink_loop_from_path_resolution_is_one_line(tmp_path, monkeypatch, capsys):
    loop = tmp_path / "x.parquet"
    _failing_match(monkeypatch, RuntimeError(f"Symlink loop from {str(loop)!r}"))
    code, _, err = _invoke(["match", "--sample", "--out", tmp_path / "o"], capsys)
    assert code == 1 and _lines(err) == [
        f"error: {loop}: symbolic link loop (Too many levels of symbolic links); fix or remove the looping link"
    ]


def test_a_user_error_is_folded_onto_one_line_and_redacted(tmp_path, monkeypatch, capsys):
    from janus_build.errors import InputError

    monkeypatch.setenv("FLICKR_API_KEY", "secret-key-0123")
    url = "http://api.example.org/rest/?api_key=abcdef123&method=x"
    _failing_match(monkeypatch, InputError(f"first part\n  second part from {url} (secret-key-0123)"))
    code, _, err = _invoke(["match", "--sample", "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert _lines(err) == [
        "error: first part; second part from http://api.example.org/rest/?api_key=***&method=x (***)"
    ]


def test_ctrl_c_says_what_is_kept_and_exits_130(tmp_path, monkeypatch, capsys):
    _failing_match(monkeypatch, KeyboardInterrupt())
    code, out, err = _invoke(["match", "--sample", "--out", tmp_path / "o"], capsys)
    assert code == 130
    assert _lines(err) == ["interrupted; finished shards are kept and a re-run resumes"]
    assert "Traceback" not in out + err


def test_version_and_help_still_exit_zero(capsys):
    assert _invoke(["--version"], capsys)[0] == 0
    code, out, _ = _invoke(["match", "--help"], capsys)
    assert code == 0 and "--strategy" in out


# --- Rich markup in data ---------------------------------------------------------------------

# Rich would crash on the first, print the third without its brackets and style the path.
HOSTILE = {291: "lion [/oops]", 292: "[Panthera leo]", 293: "[panthera tigris]"}
QUERY = {291: "lion", 292: "leo", 293: "tigris"}


@pytest.fixture
def wide_console(monkeypatch):
    """Consoles 200 columns wide, so that table cells hold a class name on one line."""
    from janus_build.cli import common

    monkeypatch.setenv("COLUMNS", "200")
    common.console.cache_clear()
    common.console_err.cache_clear()
    yield
    common.console.cache_clear()
    common.console_err.cache_clear()


def _all_hostile_names_in(text: str) -> bool:
    return all(name in text for name in HOSTILE.values())


def test_class_names_that_look_like_markup_print_literally_in_match(tmp_path, capsys, wide_console):
    labels = tmp_path / "labels.tsv"
    labels.write_text("class_id\tname\n" + "".join(f"{c}\t{n}\n" for c, n in HOSTILE.items()))
    terms = tmp_path / "terms.tsv"
    terms.write_text("class_id\tname\tterms\n" + "".join(f"{c}\t{n}\t{QUERY[c]}\n" for c, n in HOSTILE.items()))
    captions = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"TEXT": [f"a {q} at rest" for q in QUERY.values()]}), captions)
    out_dir = tmp_path / "[bold]o"
    args = ["match", captions, "--out", out_dir, "--labels", labels, "--classnames", terms]
    code, out, err = _invoke(args, capsys)
    assert code == 0, err
    assert _all_hostile_names_in(out) and "/[bold]o" in out, out  # the title (wrapped to the table)
    assert [line.split() for line in out.splitlines() if "│ labelled" in line] == [["│", "labelled", "│", "3", "│"]]


def test_class_names_that_look_like_markup_print_literally_in_fetch(tmp_path, monkeypatch, capsys, wide_console):
    from janus_build.demo.flickr_server import FakeFlickr

    queries = tmp_path / "[bold]q.toml"
    queries.write_text(
        "".join(
            f'[[class]]\nid = {c}\nname = "{n}"\nqueries = ["{QUERY[c]}"]\ntarget = 4\n\n' for c, n in HOSTILE.items()
        )
    )
    code, out, err = _invoke(["queries", "check", queries], capsys)
    assert code == 0 and f"ok: {queries}: 3 classes" in out, err
    with FakeFlickr(dict(HOSTILE), queries=QUERY, photos_per_class=8) as fake:
        monkeypatch.setenv("FLICKR_API_KEY", fake.api_key)
        monkeypatch.setenv("FLICKR_API_SECRET", fake.api_secret)
        args = ["fetch", "--out", tmp_path / "o", "--queries", queries, "--api-url", fake.api_url, "--metadata-only"]
        code, out, err = _invoke(args, capsys)
    assert code == 0, err
    assert _all_hostile_names_in(out) and "Traceback" not in err, out


def test_progress_task_names_are_not_markup():
    from janus_build.cli.common import RichProgress

    with RichProgress() as progress:
        for name in HOSTILE.values():
            progress.start(name, total=2)
            progress.advance(name)
            progress.finish(name)


# --- a full or read-only output in every stage ------------------------------------------------
def _refusing_writes(monkeypatch: pytest.MonkeyPatch, code: int, out: Path) -> None:
    """Every atomic write below ``out`` except the manifest fails as the OS would (mid-run: the
    stage has opened its directory and written its manifest first)."""
    import contextlib

    from janus_build.core import fsio

    real = fsio.atomic_path

    @contextlib.contextmanager
    def refusing(path):
        target = Path(path)
        if target.name != "_manifest.json" and str(target).startswith(str(out)):
            raise OSError(code, os.strerror(code), str(target))
        with real(path) as tmp:
            yield tmp

    monkeypatch.setattr(fsio, "atomic_path", refusing)


def _imported(tmp: Path) -> Path:
    """A labelled image stage (janus import folders), written before writes are refused."""
    from janus_build.importers import FoldersImportConfig, import_folders

    out = tmp / "imported"
    import_folders(FoldersImportConfig(root=tmp / "tree", out=out, layout="wnid", labels="in1k"))
    return out


def _tiny_blip(tmp: Path) -> Path:
    from janus_build.demo.tiny_blip import build_tiny_blip

    return build_tiny_blip(tmp / "tiny-blip")


def _metrics_file(tmp: Path) -> Path:
    import json

    path = tmp / "metrics.json"
    shifts = {s: {"top1": 0.5} for s in ("imagenet_val", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")}
    path.write_text(json.dumps({"shifts": shifts, "average_robustness": 0.5, "effective_robustness_ratio": 1.0}))
    return path


def _stage_commands(world: dict[str, Path], tmp: Path) -> dict[str, list[object]]:
    from janus_build.demo.images import class_image

    tree = tmp / "tree" / "n01440764"
    tree.mkdir(parents=True)
    for i in range(2):
        (tree / f"a{i}.jpg").write_bytes(class_image(0, i, SIZE))
    evals = tmp / "evalset" / "x"
    evals.mkdir(parents=True)
    (evals / "e.jpg").write_bytes(class_image(1, 99, SIZE))
    return {
        "match": ["match", "--sample"],
        "import": ["import", "folders", tmp / "tree", "--layout", "wnid", "--labels", "in1k"],
        "balance": ["balance", f"name=a,images={_imported(tmp)},labels=ground_truth", "--labels", "in1k"],
        "caption": ["caption", world["stage"], "--model", _tiny_blip(tmp), "--device", "cpu", "--num-workers", "0"],
        "train": ["train", world["shards"], *TRAIN_ARGS],
        "label": ["label", world["stage"], "--model", "open_clip:tiny", "--pretrained", "none", "--prompts", "single", "--workers", "0"],
        "dedup": ["dedup", world["stage"], "--eval", f"v={tmp / 'evalset'}"],
        "report": ["report", _metrics_file(tmp)],
    }  # fmt: skip


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
@pytest.mark.parametrize("stage", ["match", "import", "balance", "caption", "train", "label", "dedup", "report"])
def test_a_full_or_read_only_output_is_one_line_in_every_stage(stage, code, world, tmp_path, monkeypatch, capsys):
    import json
    import logging

    logging.getLogger("janus_build").handlers.clear()  # an earlier main()'s handler holds a closed capture
    out = tmp_path / "out"
    args = [*_stage_commands(world, tmp_path)[stage], "--out", out]
    _refusing_writes(monkeypatch, code, out)
    exit_code, _, err = _invoke(args, capsys)
    errors = [line for line in _lines(err) if line.startswith("error:")]
    assert exit_code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert ("disk full" if code == errno.ENOSPC else "read-only") in errors[0] and str(out) in errors[0], err
    manifest = out / "_manifest.json"
    if manifest.is_file():  # nothing reports success with data missing
        assert json.loads(manifest.read_text())["completed"] is False


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_a_full_or_read_only_output_is_one_line_in_fetch_and_tag_export(code, world, tmp_path, monkeypatch, capsys):
    import logging

    from janus_build.demo.flickr_server import FakeFlickr
    from janus_build.tag.db import open_queue

    logging.getLogger("janus_build").handlers.clear()
    with FakeFlickr({291: "lion"}, photos_per_class=6) as fake:
        monkeypatch.setenv("FLICKR_API_KEY", fake.api_key)
        monkeypatch.setenv("FLICKR_API_SECRET", fake.api_secret)
        out = tmp_path / "fetch"
        _refusing_writes(monkeypatch, code, out)
        args = [
            "fetch",
            "--out",
            out,
            "--classes",
            "291",
            "--per-class",
            "6",
            "--api-url",
            fake.api_url,
            "--metadata-only",
        ]
        exit_code, _, err = _invoke(args, capsys)
    errors = [line for line in _lines(err) if line.startswith("error:")]
    assert exit_code == 1 and len(errors) == 1 and str(out) in errors[0] and "Traceback" not in err, err
    with open_queue(world["stage"]):
        pass  # the queue exists, so export has something to write
    target = tmp_path / "tags" / "tags.parquet"
    _refusing_writes(monkeypatch, code, target.parent)
    exit_code, _, err = _invoke(["tag", "export", world["stage"], "--out", target], capsys)
    errors = [line for line in _lines(err) if line.startswith("error:")]
    assert exit_code == 1 and len(errors) == 1 and "Traceback" not in err, err
