"""janus eval: exact logit masking, folder-to-class mapping (V2 by integer, R/A by wnid), metrics
arithmetic, clear errors, timm models by name, and the CLI table + JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from janus_build.cli import app  # noqa: E402
from janus_build.demo.images import class_image  # noqa: E402
from janus_build.errors import ConfigError, InputError, MissingResourceError  # noqa: E402
from janus_build.labels import load_label_set  # noqa: E402
from janus_build.train.evaluate import (  # noqa: E402
    EvalConfig,
    evaluate,
    evaluated_classes,
    list_folder,
    masked_predictions,
    score_folder,
    shift_facts,
    summarize,
)

IN100 = load_label_set("in100").ids
WNID = load_label_set("in1k").wnids


def _images(folder: Path, n: int, class_id: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}.jpg").write_bytes(class_image(class_id, i, size=32))


def test_masking_restricts_predictions_exactly() -> None:
    head = list(range(10))
    logits = torch.tensor(
        [
            [0.0, 0, 0, 9, 0, 5, 0, 1, 0, 0],  # overall argmax 3 (not allowed) -> 5
            [0.0, 0, 2, 0, 0, 1, 0, 3, 0, 0],  # -> 7
            [8.0, 0, 4, 0, 0, 0, 0, 0, 0, 0],  # overall 0 -> 2
        ]
    )
    assert masked_predictions(logits, head, [2, 5, 7]).tolist() == [5, 7, 2]
    targets = torch.tensor([5, 2, 2])
    assert (masked_predictions(logits, head, [2, 5, 7]) == targets).float().mean().item() == pytest.approx(2 / 3)
    assert (logits.argmax(1) == targets).float().mean().item() == pytest.approx(0.0)  # unmasked: none right
    # a head over a custom label set: column j scores class head[j]
    custom = [500, 7, 42]
    assert masked_predictions(torch.tensor([[1.0, 3.0, 2.0]]), custom, [500, 42]).tolist() == [42]
    with pytest.raises(ConfigError, match="no output"):
        masked_predictions(logits, head, [2, 11])


def test_shift_class_sets_match_the_facts(janus_facts: Path) -> None:
    facts = json.loads((janus_facts / "in100_shift_indices.json").read_text())
    assert evaluated_classes(IN100, "imagenet_r") == tuple(sorted(facts["in100_r"]))
    assert evaluated_classes(IN100, "imagenet_a") == tuple(sorted(facts["in100_a"]))
    assert len(evaluated_classes(IN100, "imagenet_r")) == 36 and len(evaluated_classes(IN100, "imagenet_a")) == 37
    assert evaluated_classes(IN100, "imagenet_v2") == tuple(sorted(IN100))
    assert shift_facts()["imagenet_r_200"] == facts["imagenet_r_200"]


def test_v2_folders_map_by_integer_not_string_sort(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    for name, n in (("2", 1), ("10", 2), ("100", 3), ("6", 4)):  # 10, 100 and 2 are IN1k classes outside IN100
        _images(root / name, n)
    folder = list_folder("imagenet_v2", root, range(1000))
    counts = {c: sum(1 for _, k in folder.files if k == c) for c in (2, 6, 10, 100)}
    assert counts == {2: 1, 6: 4, 10: 2, 100: 3}
    assert all(Path(p).parent.name == str(c) for p, c in folder.files)
    in100 = list_folder("imagenet_v2", root, IN100)  # 10 and 100 are not IN100 classes
    assert {c for _, c in in100.files} == {2, 6} and len(in100.classes) == 100

    def always(class_id: int):
        def forward(images):
            logits = torch.zeros(len(images), 1000)
            logits[:, class_id] = 1.0
            return logits

        return forward

    result = score_folder(
        always(10),
        folder,
        range(1000),
        lambda im: torch.zeros(3, 8, 8, dtype=torch.uint8),
        device=torch.device("cpu"),
        workers=0,
    )
    assert (result["correct"], result["images"], result["top1"]) == (2, 10, 0.2)
    (root / "n01440764").mkdir()
    with pytest.raises(InputError, match="unexpected class folder 'n01440764'"):
        list_folder("imagenet_v2", root, IN100)


def test_r_and_a_map_wnid_folders_and_keep_the_in100_classes(tmp_path: Path) -> None:
    facts = shift_facts()
    root = tmp_path / "r"
    inside, outside = facts["in100_r"][0], next(c for c in facts["imagenet_r_200"] if c not in set(IN100))
    _images(root / WNID[inside], 3)
    _images(root / WNID[outside], 5)  # an R class outside IN100: ignored
    folder = list_folder("imagenet_r", root, IN100)
    assert {c for _, c in folder.files} == {inside} and len(folder.files) == 3 and len(folder.classes) == 36
    not_in_r = next(c for c in IN100 if c not in set(facts["imagenet_r_200"]))
    (root / WNID[not_in_r]).mkdir()
    with pytest.raises(InputError, match="not one of the 200 ImageNet-R classes"):
        list_folder("imagenet_r", root, IN100)
    a_root = tmp_path / "a"
    _images(a_root / WNID[facts["in100_a"][-1]], 2)
    assert list_folder("imagenet_a", a_root, IN100).classes == tuple(sorted(facts["in100_a"]))


def test_folder_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--imagenet-sketch .*no such directory"):
        list_folder("imagenet_sketch", tmp_path / "nope", IN100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="--imagenet-val .*no class folders"):
        list_folder("imagenet_val", tmp_path / "empty", IN100)
    _images(tmp_path / "val" / "val" / "holiday_photos", 1)
    with pytest.raises(InputError, match="unexpected class folder 'holiday_photos'"):
        list_folder("imagenet_val", tmp_path / "val", IN100)


def test_an_unreadable_image_is_a_one_line_error_from_a_loader_worker(tmp_path: Path) -> None:
    from janus_build.train.data import eval_transform

    _images(tmp_path / "val" / WNID[IN100[0]], 3, class_id=IN100[0])
    (tmp_path / "val" / WNID[IN100[0]] / "1.jpg").write_bytes(b"not a jpeg")
    folder = list_folder("imagenet_val", tmp_path / "val", IN100)
    with pytest.raises(InputError) as caught:
        score_folder(
            lambda images: torch.zeros(len(images), 1000),
            folder,
            range(1000),
            eval_transform(32),
            device=torch.device("cpu"),
            batch_size=2,
            workers=1,
        )
    assert str(caught.value).startswith(f"{tmp_path / 'val' / WNID[IN100[0]] / '1.jpg'}: unreadable image")
    assert "Traceback" not in str(caught.value)


def test_val_accepts_the_imagenet_root_with_a_val_folder(tmp_path: Path) -> None:
    _images(tmp_path / "imagenet" / "val" / WNID[IN100[0]], 2)
    folder = list_folder("imagenet_val", tmp_path / "imagenet", IN100)
    assert len(folder.files) == 2 and folder.root.endswith("val")


def test_metrics_arithmetic() -> None:
    shifts = {
        "imagenet_val": 0.870,
        "imagenet_v2": 0.791,
        "imagenet_sketch": 0.373,
        "imagenet_r": 0.378,
        "imagenet_a": 0.153,
    }
    metrics = summarize({k: {"top1": v} for k, v in shifts.items()})
    assert metrics["average_robustness"] == pytest.approx(
        (0.791 + 0.373 + 0.378 + 0.153) / 4
    )  # the paper's baseline: 0.424
    assert round(metrics["average_robustness"], 3) == 0.424
    assert metrics["effective_robustness_ratio"] == pytest.approx(metrics["average_robustness"] / 0.870)
    assert metrics["average_robustness_complete"] and metrics["val_top1"] == 0.870
    from janus_build.schemas import EVAL_METRICS_KEYS

    assert set(EVAL_METRICS_KEYS) <= set(metrics)
    partial = summarize({"imagenet_r": {"top1": 0.5}, "imagenet_a": {"top1": 0.25}})
    assert partial["average_robustness"] == 0.375 and partial["effective_robustness_ratio"] is None
    assert not partial["average_robustness_complete"] and partial["average_robustness_shifts"] == [
        "imagenet_r",
        "imagenet_a",
    ]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from janus_build.demo.eval_sets import write_synthetic_shards
    from janus_build.train.loop import TrainConfig, train

    root = tmp_path_factory.mktemp("ckpt")
    write_synthetic_shards(root / "shards", per_class=8, size=32, shards=1)
    train(
        TrainConfig(
            shards=(str(root / "shards"),),
            out=str(root / "run"),
            arch="tiny",
            epochs=1,
            batch_size=16,
            image_size=32,
            workers=0,
            augment="standard",
            device="cpu",
        )
    )
    return root / "run" / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def shift_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from janus_build.demo.eval_sets import write_synthetic_shift_folders

    return write_synthetic_shift_folders(tmp_path_factory.mktemp("shifts"), per_class=2, size=32)


def test_cli_eval_prints_the_table_and_writes_json(
    checkpoint: Path, shift_dirs: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "metrics.json"
    args = ["eval", str(checkpoint), "--workers", "0", "--device", "cpu", "--out", str(out)]
    for shift, path in shift_dirs.items():
        args += ["--" + shift.replace("_", "-"), path]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in (
        "ImageNet-V2",
        "ImageNet-Sketch",
        "ImageNet-R",
        "ImageNet-A",
        "average robustness",
        "effective robustness ratio",
    ):
        assert text in result.output
    metrics = json.loads(out.read_text())
    assert metrics["model"]["arch"] == "tiny" and metrics["labels"] == "in100"
    assert metrics["shifts"]["imagenet_r"]["classes"] == 36 and metrics["shifts"]["imagenet_a"]["classes"] == 37
    top1 = {k: v["top1"] for k, v in metrics["shifts"].items()}
    assert metrics["average_robustness"] == pytest.approx(
        sum(top1[k] for k in ("imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")) / 4
    )


def test_checkpoint_of_another_architecture_is_a_clear_error(
    checkpoint: Path, shift_dirs: dict[str, str], tmp_path: Path
) -> None:
    run_dir = checkpoint.parent.parent  # a run directory means its best (here: last) checkpoint
    assert evaluate(
        EvalConfig(checkpoint=str(run_dir), imagenet_val=shift_dirs["imagenet_val"], device="cpu", workers=0)
    )["model"]["checkpoint"] == str(checkpoint)
    with pytest.raises(InputError, match="trained with --arch tiny, not --arch resnet26"):
        evaluate(
            EvalConfig(
                checkpoint=str(checkpoint),
                arch="resnet26",
                imagenet_val=shift_dirs["imagenet_val"],
                device="cpu",
                workers=0,
            )
        )
    bare = tmp_path / "vit.pt"
    import timm

    torch.save(timm.create_model("test_vit", num_classes=1000).state_dict(), bare)
    with pytest.raises(InputError, match="do not fit --arch tiny.*another architecture"):
        evaluate(
            EvalConfig(
                checkpoint=str(bare), arch="tiny", imagenet_val=shift_dirs["imagenet_val"], device="cpu", workers=0
            )
        )
    with pytest.raises(InputError, match="--arch"):
        evaluate(EvalConfig(checkpoint=str(bare), imagenet_val=shift_dirs["imagenet_val"], device="cpu", workers=0))
    with pytest.raises(ConfigError, match="either CHECKPOINT or --timm-model"):
        evaluate(EvalConfig(imagenet_val=shift_dirs["imagenet_val"]))


def test_timm_model_by_name_uses_local_weights_only(
    shift_dirs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import timm

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingResourceError, match="--timm-weights"):
        evaluate(EvalConfig(timm_model="test_resnet", imagenet_v2=shift_dirs["imagenet_v2"], device="cpu", workers=0))
    weights = tmp_path / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet", num_classes=1000).state_dict(), weights)
    metrics = evaluate(
        EvalConfig(
            timm_model="test_resnet",
            timm_weights=str(weights),
            imagenet_v2=shift_dirs["imagenet_v2"],
            imagenet_r=shift_dirs["imagenet_r"],
            device="cpu",
            workers=0,
            labels="in1k",
        )
    )
    assert metrics["model"]["timm_model"] == "test_resnet"
    assert metrics["shifts"]["imagenet_v2"]["classes"] == 1000 and metrics["shifts"]["imagenet_r"]["classes"] == 200
