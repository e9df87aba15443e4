"""janus train: learning on generated shards, exact resume, the VL path, torchrun (gloo), bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from janus_build.demo.eval_sets import DEMO_CLASSES, write_synthetic_shards, write_synthetic_shift_folders  # noqa: E402
from janus_build.errors import ConfigError, InputError, OutputError  # noqa: E402
from janus_build.progress import Progress  # noqa: E402
from janus_build.train.data import ShardStream, consumer_plan, resolve_shards, train_transform  # noqa: E402
from janus_build.train.loop import TrainConfig, cosine_with_warmup, train  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_shards(root, per_class=32, size=SIZE, shards=3)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_synthetic_shift_folders(tmp_path_factory.mktemp("eval"), per_class=4, size=SIZE)


def _config(shards: Path, out: Path, **changes) -> TrainConfig:
    base = dict(
        shards=(str(shards),),
        out=str(out),
        arch="tiny",
        epochs=3,
        batch_size=32,
        image_size=SIZE,
        workers=0,
        warmup_epochs=0.5,
        lr=3e-3,
        augment="standard",
        shuffle_buffer=64,
        device="cpu",
    )
    base.update(changes)
    return TrainConfig(**base)


def test_resolve_shards_accepts_dirs_globs_files_and_reads_manifest(shards: Path) -> None:
    write_synthetic_shards(shards, per_class=2, size=SIZE, shards=1, split="val")  # balance's val/ is not trained on
    from_dir = resolve_shards([shards])
    assert len(from_dir.shards) == 3 and from_dir.samples == 32 * len(DEMO_CLASSES)
    assert from_dir.labels == "in100"  # from the balance manifest
    from_glob = resolve_shards([str(shards / "train" / "*.tar")])
    from_file = resolve_shards([shards / "train" / "00001.tar"])
    assert [s.path for s in from_glob.shards] == [s.path for s in from_dir.shards]
    assert from_file.shards[0].count == from_dir.shards[1].count
    with pytest.raises(InputError, match="no such file"):
        resolve_shards([shards / "missing.tar"])
    with pytest.raises(InputError, match="matches no"):
        resolve_shards([str(shards / "*.nothing.tar")])


def test_consumers_split_shards_or_samples_disjointly(shards: Path) -> None:
    shard_set = resolve_shards([shards])
    plans = [consumer_plan(shard_set.shards, c, 3, seed=0, epoch=0) for c in range(3)]
    assert sorted(u for urls, _, _ in plans for u in urls) == sorted(s.path for s in shard_set.shards)
    assert (
        len({tuple(consumer_plan(shard_set.shards, 0, 1, 0, epoch)[0]) for epoch in range(6)}) > 1
    )  # reshuffled per epoch
    # more consumers (4 processes) than shards (3): everyone reads all shards and keeps every 4th sample
    keys = []
    for rank in range(4):
        stream = ShardStream(
            shard_set.shards,
            train_transform("standard", SIZE),
            head_ids=range(1000),
            rank=rank,
            world_size=4,
            shuffle_buffer=0,
        )
        stream._convert = lambda sample: (sample["__key__"], 0)  # type: ignore[method-assign]
        it = iter(stream)
        keys.append({next(it)[0] for _ in range(shard_set.samples // 4)})
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == shard_set.samples


def test_simclr_augmentation_is_the_papers() -> None:
    from torchvision import transforms as T

    from janus_build.train.data import PILGaussianBlur

    steps = train_transform("simclr", 64).transforms
    assert [type(s) for s in steps] == [
        T.RandomResizedCrop,
        T.RandomHorizontalFlip,
        T.RandomApply,
        T.RandomGrayscale,
        T.RandomApply,
        T.PILToTensor,
    ]
    crop, flip, jitter, grey, blur = steps[:5]
    assert crop.size == (64, 64) and tuple(crop.scale) == (0.08, 1.0) and flip.p == 0.5
    colour = jitter.transforms[0]
    assert jitter.p == 0.8 and isinstance(colour, T.ColorJitter)
    ranges = [*colour.brightness, *colour.contrast, *colour.saturation, *colour.hue]
    assert ranges == pytest.approx([0.6, 1.4, 0.6, 1.4, 0.6, 1.4, -0.1, 0.1])  # ColorJitter(0.4, 0.4, 0.4, 0.1)
    assert grey.p == 0.2
    assert blur.p == 0.5 and isinstance(blur.transforms[0], PILGaussianBlur) and blur.transforms[0].sigma == (0.1, 2.0)
    assert [type(s) for s in train_transform("standard", 64).transforms] == [
        T.RandomResizedCrop,
        T.RandomHorizontalFlip,
        T.PILToTensor,
    ]
    with pytest.raises(ConfigError, match="--augment"):
        train_transform("autoaugment", 64)


def test_precision_auto_is_native_bf16_else_fp16_on_gpus_and_fp32_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from janus_build.train.runtime import resolve_precision

    def gpu(native_bf16: bool):
        # torch's check answers True for GPUs that merely emulate bf16 (V100, T4) unless including_emulation=False
        return lambda including_emulation=True: native_bf16 or including_emulation

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", gpu(True))
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", gpu(False))
    assert resolve_precision("auto", cuda) == "fp16"
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ConfigError, match="--precision"):
        resolve_precision("fp8", cuda)


def test_cosine_schedule_with_warmup() -> None:
    assert cosine_with_warmup(0, 100, 10) == pytest.approx(0.1)
    assert cosine_with_warmup(9, 100, 10) == pytest.approx(1.0)
    assert cosine_with_warmup(55, 100, 10) == pytest.approx(0.5)
    assert cosine_with_warmup(100, 100, 10) == pytest.approx(0.0)


def test_loss_falls_and_evaluation_is_written(shards: Path, folders: dict[str, str], tmp_path: Path) -> None:
    summary = train(_config(shards, tmp_path / "run", epochs=5, eval_every=5, **folders))
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < 0.6 * losses[0], losses
    metrics = json.loads((tmp_path / "run" / "eval" / "epoch_0005.json").read_text())
    assert metrics["val_top1"] > 0.5  # 6 learnable classes, predictions over 100: chance is 1%
    assert set(metrics["shifts"]) == set(folders) and metrics["average_robustness_complete"]
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    manifest = json.loads((tmp_path / "run" / "_manifest.json").read_text())
    assert manifest["stage"] == "train" and manifest["completed"]
    with pytest.raises(OutputError, match="--resume"):
        train(_config(shards, tmp_path / "run", epochs=5))


class _CrashAt(Progress):
    def __init__(self, task: str) -> None:
        self.task = task

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        if task == self.task:
            raise KeyboardInterrupt


def test_resume_reproduces_the_uninterrupted_run(shards: Path, tmp_path: Path) -> None:
    config = _config(shards, tmp_path / "whole", epochs=2, workers=1, augment="simclr")
    train(config)
    crashed = _config(shards, tmp_path / "crashed", epochs=2, workers=1, augment="simclr")
    with pytest.raises(KeyboardInterrupt):
        train(crashed, _CrashAt("epoch 2/2"))
    first = torch.load(tmp_path / "crashed" / "checkpoints" / "last.pt", weights_only=False)
    assert first["epoch"] == 1
    with pytest.raises(OutputError, match="other options"):
        train(_config(shards, tmp_path / "crashed", epochs=2, workers=1, augment="standard", resume=True))
    summary = train(_config(shards, tmp_path / "crashed", epochs=2, workers=1, augment="simclr", resume=True))
    assert summary["steps"] == 2 * first["step"]
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "crashed" / "checkpoints" / "last.pt", weights_only=False)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    assert a["scheduler"] == b["scheduler"] and a["history"][0]["loss"] == b["history"][0]["loss"]
    again = train(
        _config(shards, tmp_path / "crashed", epochs=2, workers=1, augment="simclr", resume=True)
    )  # a finished run
    assert again["steps"] == summary["steps"] and again["last_loss"] == summary["last_loss"] is not None


def test_best_checkpoint_is_the_best_average_robustness_and_gradients_are_not_clipped(
    shards: Path, folders: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from janus_build.train import evaluate as ev

    scripted = iter(
        [  # epoch 1 has the best val, epoch 3 the best V2; epoch 2 the best average robustness
            {"imagenet_val": 0.90, "imagenet_v2": 0.3, "imagenet_sketch": 0.3, "imagenet_r": 0.3, "imagenet_a": 0.3},
            {"imagenet_val": 0.50, "imagenet_v2": 0.5, "imagenet_sketch": 0.5, "imagenet_r": 0.4, "imagenet_a": 0.4},
            {"imagenet_val": 0.95, "imagenet_v2": 0.7, "imagenet_sketch": 0.4, "imagenet_r": 0.3, "imagenet_a": 0.2},
        ]
    )
    monkeypatch.setattr(
        ev, "evaluate_model", lambda *a, **k: ev.summarize({s: {"top1": t} for s, t in next(scripted).items()})
    )
    clipped = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: clipped.append(a))
    summary = train(
        _config(shards, tmp_path / "best", epochs=3, eval_every=1, steps_per_epoch=1, batch_size=8, **folders)
    )
    assert [h["metrics"]["average_robustness"] for h in summary["history"]] == pytest.approx([0.3, 0.45, 0.4])
    assert summary["best"]["model"]["epoch"] == 2 and clipped == []  # the paper clips nothing
    best = torch.load(tmp_path / "best" / "checkpoints" / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "best" / "checkpoints" / "last.pt", weights_only=False)
    assert (best["epoch"], last["epoch"]) == (2, 3) and not torch.equal(
        best["model"]["fc.weight"], last["model"]["fc.weight"]
    )
    train(_config(shards, tmp_path / "clip", epochs=1, steps_per_epoch=1, batch_size=8, grad_clip=1.0))
    assert len(clipped) == 1


def test_vl_loss_runs_with_a_tiny_open_clip(shards: Path, folders: dict[str, str], tmp_path: Path) -> None:
    summary = train(
        _config(
            shards,
            tmp_path / "vl",
            loss="vl",
            epochs=2,
            batch_size=16,
            steps_per_epoch=3,
            imagenet_val=folders["imagenet_val"],
            imagenet_r=folders["imagenet_r"],
        )
    )
    assert summary["steps"] == 6 and all(h["loss"] == h["loss"] and h["loss"] > 0 for h in summary["history"])
    best = summary["best"]
    assert best["model"]["loss"] == "vl" and 0.0 <= best["val_top1"] <= 1.0  # zero-shot over class-name prompts
    assert best["average_robustness_shifts"] == ["imagenet_r"] and not best["average_robustness_complete"]


def test_device_decode_path_trains(shards: Path, tmp_path: Path) -> None:
    # --decode gpu on the CPU: loader workers ship JPEG bytes, decode + SimCLR run batched on the device
    summary = train(
        _config(
            shards, tmp_path / "gpu-decode", decode="gpu", augment="simclr", epochs=1, steps_per_epoch=2, batch_size=8
        )
    )
    assert summary["steps"] == 2 and summary["last_loss"] > 0


def test_device_augment_output() -> None:
    from janus_build.demo.images import class_image
    from janus_build.train.gpu_data import DeviceAugment

    jpegs = [torch.frombuffer(bytearray(class_image(c, 0, size=40)), dtype=torch.uint8) for c in range(4)]
    torch.manual_seed(0)
    out = DeviceAugment("simclr", 24, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), torch.device("cpu"))(jpegs)
    assert out.shape == (4, 3, 24, 24) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # mean 0 / std 1: values stay in [0, 1]


def test_custom_label_set_sizes_the_head_and_skips_other_classes(shards: Path, tmp_path: Path) -> None:
    labels = tmp_path / "three.tsv"
    labels.write_text("class_id\tname\n13\tjunco\n6\tstingray\n99\tgoose\n")
    summary = train(_config(shards, tmp_path / "custom", labels=str(labels), epochs=1, steps_per_epoch=2, batch_size=8))
    state = torch.load(Path(summary["checkpoint"]), weights_only=False)
    assert state["model_spec"]["head_ids"] == [13, 6, 99]
    assert state["model"]["fc.weight"].shape[0] == 3


def test_samples_training_cannot_use_are_counted_up_front(shards: Path, tmp_path: Path) -> None:
    from janus_build.core.shards import ImageShardWriter
    from janus_build.demo.images import class_image
    from janus_build.train.data import usable_samples

    shard_set = resolve_shards([shards])
    assert usable_samples(shard_set.shards, range(1000)) == usable_samples(shard_set.shards) == shard_set.samples
    assert usable_samples(shard_set.shards, [DEMO_CLASSES[0], 500]) == shard_set.samples // len(DEMO_CLASSES)
    with ImageShardWriter(tmp_path / "half", "00000") as writer:  # e.g. ImageNet images balanced in without captions
        for i, caption in enumerate(["a photo of a junco", "", "  ", "a goose"]):
            writer.write(
                f"k{i}",
                class_image(13, i, size=SIZE),
                {"label": 13, "caption": caption, "source": "custom", "label_source": "ground_truth", "split": "train"},
                extra={"cls": "13", "txt": caption},
            )
    half = resolve_shards([tmp_path / "half"])
    assert usable_samples(half.shards) == 2 and usable_samples(half.shards, [13]) == 4
    stream = ShardStream(
        half.shards, train_transform("standard", SIZE), tokenizer=lambda texts: texts, shuffle_buffer=0
    )
    it = iter(stream)
    assert [next(it)[1] for _ in range(4)] == ["a photo of a junco", "a goose"] * 2  # blank captions are skipped
    labels = tmp_path / "elsewhere.tsv"
    labels.write_text("class_id\tname\n500\tcliff\n501\tcloak\n")
    with pytest.raises(InputError, match="none of the .* training samples has a class of the label set"):
        train(_config(shards, tmp_path / "no-class", labels=str(labels)))
    assert not (tmp_path / "no-class").exists()  # refused before anything is written


def test_bad_options_fail_before_training(shards: Path, folders: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--optimizer"):
        train(_config(shards, tmp_path / "a", optimizer="lamb"))
    with pytest.raises(ConfigError, match="--arch"):
        train(_config(shards, tmp_path / "b", arch="no_such_net"))
    with pytest.raises(InputError, match="--imagenet-r"):
        train(_config(shards, tmp_path / "c", imagenet_r=folders["imagenet_val"] + "-missing"))
    with pytest.raises(ConfigError, match="larger than"):
        train(_config(shards, tmp_path / "d", batch_size=4096))


def test_torchrun_two_cpu_processes(shards: Path, folders: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "janus_build",
        "train",
        str(shards),
        "--out",
        str(out),
        "--arch",
        "tiny",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--image-size",
        str(SIZE),
        "--workers",
        "0",
        "--augment",
        "standard",
        "--lr",
        "3e-3",
        "--warmup-epochs",
        "0.5",
        "--device",
        "cpu",
        "--eval-every",
        "2",
        "--imagenet-val",
        folders["imagenet_val"],
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["loss"] < history[0]["loss"]
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert state["step"] == 2 * (32 * len(DEMO_CLASSES) // 32)
    assert json.loads((out / "_manifest.json").read_text())["summary"]["world_size"] == 2
    assert (out / "eval" / "epoch_0002.json").is_file()


def test_config_checks_options_on_construction_and_names_every_shift() -> None:
    from janus_build import schemas
    from janus_build.train.config import SHIFT_FIELDS

    assert SHIFT_FIELDS == schemas.EVAL_SHIFTS  # the light config cannot import schemas (pyarrow)
    with pytest.raises(ConfigError, match="--decode: expected one of cpu, gpu, got 'tpu'"):
        TrainConfig(shards=("x",), out="y", decode="tpu")
    with pytest.raises(ConfigError, match="--eval-every"):
        TrainConfig(shards=("x",), out="y", eval_every=0)


def test_bare_tars_are_counted_by_the_core_scanner(tmp_path: Path) -> None:
    import webdataset as wds

    from janus_build.demo.images import class_image

    with wds.TarWriter(str(tmp_path / "a.tar")) as sink:
        for i in range(3):
            sink.write({"__key__": f"s{i}", "jpg": class_image(i, 0, 16), "cls": b"1"})
        sink.write({"__key__": "meta-only", "json": b"{}"})
    assert resolve_shards([tmp_path / "a.tar"]).samples == 3
    (tmp_path / "broken.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(InputError, match="broken.tar"):
        resolve_shards([tmp_path / "broken.tar"])
