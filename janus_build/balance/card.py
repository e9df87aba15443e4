"""The dataset card (README.md: Hugging Face YAML header + Markdown) and the per-class plot.

Every value that comes from data or the user (titles, owners, class names, source names, keys,
URLs, licences) is escaped before it enters the card: HTML special characters become entities
and Markdown's inline syntax is backslash-escaped, so a Flickr title such as
``<script>...</script>`` or ``[click](javascript:...)`` renders as the text it is wherever the
card is shown (GitHub, the Hugging Face Hub, a docs site). YAML values are JSON-quoted.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from janus_build.balance.config import BalanceConfig
from janus_build.core.fsio import atomic_path, atomic_write_bytes
from janus_build.labels import LabelSet

ATTRIBUTION_TSV = "ATTRIBUTION.tsv"
MAX_ATTRIBUTION_IN_CARD = 5000
ATTRIBUTION_COLUMNS = ("key", "title", "owner", "url", "license")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()!|~])")  # "#" stays: html.escape writes &#x27;


def tsv_cell(value: str) -> str:
    return " ".join(str(value).split())  # no tabs or newlines inside a cell


def text(value: Any) -> str:
    """User or data text made inert for Markdown and HTML, on one line."""
    flat = " ".join(str(value if value is not None else "").split())
    return _MARKDOWN.sub(r"\\\1", html.escape(flat, quote=True))


def code(value: Any) -> str:
    """A key or path as inline code (nothing inside a code span is markup), or escaped text when
    it holds a backtick (which would end the span)."""
    flat = " ".join(str(value if value is not None else "").split())
    return text(flat) if "`" in flat or not flat else f"`{flat}`"


def write_plot(
    path: Path,
    before: np.ndarray,
    available: np.ndarray,
    after: np.ndarray,
    min_per_class: int | None,
    label_set_name: str,
) -> None:
    """Per-class counts, each sorted descending, on a log scale (the shape of the paper's Fig. 6):
    before (the ``role=base`` sources, de-duplicated), available (all eligible samples, fill
    sources included) and after balancing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    x = np.arange(1, len(before) + 1)
    ax.plot(
        x,
        np.maximum(np.sort(available)[::-1], 0.8),
        drawstyle="steps-mid",
        label="available (all sources)",
        color="#bbbbbb",
        linestyle=":",
    )
    ax.plot(
        x, np.maximum(np.sort(before)[::-1], 0.8), drawstyle="steps-mid", label="before (base sources)", color="#555555"
    )
    ax.plot(
        x,
        np.maximum(np.sort(after)[::-1], 0.8),
        drawstyle="steps-mid",
        label="after balancing",
        color="#1f77b4",
        linewidth=2,
    )
    if min_per_class:
        ax.axhline(
            min_per_class, color="#d62728", linestyle="--", linewidth=1, label=f"--min-per-class {min_per_class}"
        )
    ax.set_yscale("log")
    ax.set_xlabel(f"class rank ({label_set_name}, {len(before)} classes, sorted by count)")
    ax.set_ylabel("samples per class (log scale)")
    ax.set_title("Per-class sample counts before and after balancing")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # class ranks are whole numbers
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table; cells are escaped unless they are already markup (numbers, code spans)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


class Markup(str):
    """Card text that is already safe (built from escaped pieces)."""


def _ident(value: Any) -> Markup:
    """A name from a checked vocabulary or pattern (source names, kinds, label sources, statuses)
    as a code span: exact, and inert whatever it holds."""
    return Markup(code(value))


def _cell(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return text(value)


# --- Hugging Face YAML header ------------------------------------------------------------------------
_HF_LICENSES = {
    "cc by 4.0": "cc-by-4.0",
    "cc-by-4.0": "cc-by-4.0",
    "attribution license": "cc-by-2.0",
    "attribution-sharealike license": "cc-by-sa-2.0",
    "attribution-noncommercial license": "cc-by-nc-2.0",
    "cc0": "cc0-1.0",
    "public domain dedication (cc0)": "cc0-1.0",
}


def hf_license(licences: dict[str, int]) -> str:
    """The Hub's ``license`` id: the one licence every sample shares when it has an id, else ``other``."""
    ids = {_HF_LICENSES.get(name.strip().lower()) for name in licences}
    return ids.pop() if len(ids) == 1 and None not in ids else "other"


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M" if n < 10_000_000 else "10M<n<100M"


def _q(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def hf_header(out: Path, stats: dict[str, Any], label_set: LabelSet) -> list[str]:
    """The YAML front matter the Hugging Face Hub reads (license, task, size, configs, features)."""
    samples = stats["samples"]
    licence = hf_license(stats["licenses"])
    lines = [
        "---",
        f"pretty_name: {_q(out.name)}",
        f"license: {licence}",
        *(
            [f"license_name: {_q('mixed')}", f"license_details: {_q('per sample: see Licences and ATTRIBUTION.tsv')}"]
            if licence == "other"
            else []
        ),
        "task_categories:",
        "- image-classification",
        "- zero-shot-image-classification",
        "size_categories:",
        f"- {size_category(samples['train'] + samples['val'])}",
        "tags:",
        "- webdataset",
        "- janus-build",
        "source_datasets:",
        *(f"- {_q(name + ' (' + s['kind'] + ')')}" for name, s in stats["sources"].items()),
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        '    path: "train/*.tar"',
    ]
    if samples["val"]:
        lines += ["  - split: validation", '    path: "val/*.tar"']
    lines += ["dataset_info:", "  features:", "  - name: jpg", "    dtype: image", "  - name: cls", "    dtype:"]
    lines += ["      class_label:", "        names:"]
    lines += [f"          {_q(str(cid))}: {_q(label_set.names.get(cid, str(cid)))}" for cid in label_set.ids]
    lines += [
        "  - name: txt",
        "    dtype: string",
        "  splits:",
        "  - name: train",
        f"    num_examples: {samples['train']}",
    ]
    if samples["val"]:
        lines += ["  - name: validation", f"    num_examples: {samples['val']}"]
    return [*lines, "---", ""]


# --- Markdown sections ---------------------------------------------------------------------------------
def _summary(out: Path, config: BalanceConfig, stats: dict[str, Any], label_set: LabelSet) -> list[str]:
    budget, samples = stats["budget"], stats["samples"]
    invalid = stats["invalid_images"]["count"]
    policy = f"- Policy: `--balance {config.balance}`"
    policy += f", `--min-per-class {config.min_per_class}`" if config.min_per_class else ""
    policy += f", `--max-per-class {config.max_per_class}`" if config.max_per_class else ""
    policy += f"; per-class target {stats['per_class_target']:,}" if stats.get("per_class_target") else ""
    if stats.get("metaclip"):
        policy += (
            f"; MetaCLIP sampling with t = {stats['metaclip']['t']:,} kept {stats['metaclip']['kept']:,} of "
            f"{stats['metaclip']['pool']:,} pooled samples (Xu et al. 2023, *Demystifying CLIP Data*)"
        )
    removed = ", ".join(f"{v:,} by {k}" for k, v in stats["dedup"]["removed"].items()) or "nothing removed"
    return [
        f"# Dataset card: {text(out.name)}",
        "",
        "Built by `janus balance` (janus-build) from labelled sources, in the manner of JANuS "
        "(Feuer et al., *Distributionally Robust Classification on a Data Budget*, TMLR 2023).",
        "",
        "## Summary",
        "",
        f"- Label set: {code(label_set.name)} ({len(label_set)} classes; labels are its class ids)",
        f"- Samples: {samples['train']:,} train + {samples['val']:,} val = {samples['train'] + samples['val']:,}",
        f"- Budget: {text(budget['requested'] or 'none (all eligible samples)')}"
        + (f" = {budget['samples']:,} samples (1x = {budget['unit']:,})" if budget["samples"] is not None else ""),
        policy,
        f"- Seed: {config.seed}; validation: {config.val_fraction:g} of the selected samples by a stable hash of the key",
        f"- De-duplication ({', '.join(config.dedup) or 'none'}): {removed}; "
        f"{stats['dedup']['label_conflicts']:,} removed duplicate(s) had another label",
        f"- Classes short of their minimum: {len(stats['short_classes'])}",
        f"- Samples without any caption (empty `txt`): {stats['captions_missing']:,}",
        f"- Images that failed validation (not in the tars): {invalid:,}",
        "",
        "Each webdataset sample in `train/*.tar` and `val/*.tar` has `jpg`, `cls` (the label as an ASCII "
        "integer), `txt` (the caption) and `json` (provenance plus the source's full metadata under "
        "`source_metadata`); `NNNNN.parquet` beside each tar indexes it (key, label, caption, source, "
        "source_id, url, license, owner, title, label_source, split, ...). `croissant.json` describes "
        "the same files in Croissant 1.0.",
        "",
    ]


_SOURCE_HEADER = [
    "source",
    "kind",
    "label source",
    "priority",
    "weight",
    "role",
    "rows",
    "unlabelled",
    "missing image bytes",
    "label not in set",
    "eligible",
    "after de-dup",
    "selected",
]


def _sources(stats: dict[str, Any]) -> list[str]:
    rows = [
        [
            _ident(name),
            _ident(s["kind"]),
            _ident(s["label_source"]),
            s["priority"],
            float(s["weight"]),
            s["role"],
            *(int(s.get(k, 0)) for k in ("rows", "unlabelled", "missing_image", "label_not_in_label_set")),
            int(s.get("candidates", 0)),
            int(s["after_dedup"]),
            int(s["selected"]),
        ]
        for name, s in stats["sources"].items()
    ]
    lines = ["## Sources", "", *_table(_SOURCE_HEADER, rows)]
    problems = [(n, p, keys) for n, s in stats["sources"].items() for p, keys in s["examples"].items() if keys]
    if problems:
        lines += ["", "Reported problems (example keys):", ""]
        lines += [f"- {code(n)} {code(p)}: {', '.join(code(k) for k in keys)}" for n, p, keys in problems]
    return lines


def _labels_and_licences(stats: dict[str, Any]) -> list[str]:
    accuracy = stats.get("label_accuracy") or {}
    by_source = [
        [
            _ident(name),
            _ident(s["label_source"]),
            int(s["selected"]),
            "not measured" if accuracy.get(name) is None else accuracy[name],
        ]
        for name, s in stats["sources"].items()
    ]
    lines = ["", "## Label sources", ""]
    lines += _table(["label source", "samples"], [[_ident(k), int(v)] for k, v in stats["label_sources"].items()])
    lines += ["", "Measured label accuracy (from `janus match --truth-col`, where the source's match output has it):"]
    lines += ["", *_table(["source", "label source", "samples", "label accuracy"], by_source)]
    lines += ["", "## Licences", ""]
    ordered = sorted(stats["licenses"].items(), key=lambda kv: (-kv[1], kv[0]))
    lines += _table(["licence", "samples"], [[k, int(v)] for k, v in ordered])
    return lines


def _validation_and_contamination(stats: dict[str, Any]) -> list[str]:
    invalid = stats["invalid_images"]
    lines = ["", "## Image validation", ""]
    lines.append(
        "Every image's header was parsed (JPEG, PNG or WebP) before it entered a shard; "
        f"{invalid['count']:,} failed and are index rows with a `status` and `error_message`, without image."
    )
    if invalid["count"]:
        lines += ["", *_table(["status", "samples"], [[_ident(k), int(v)] for k, v in invalid["by_status"].items()])]
        lines += ["", *(f"- {code(k)}: {text(e)}" for k, e in invalid["examples"])]
    lines += ["", "## Evaluation-set contamination", ""]
    found = stats.get("contamination")
    if not found:
        lines.append("Not checked: no `janus dedup` report (`_contamination.json`) was given or found.")
        return lines
    report = found["report"]
    per_set = report.get("eval_sets") if isinstance(report.get("eval_sets"), dict) else {}
    lines.append(f"From {code(found['file'])}.")
    if per_set:
        columns = sorted({k for v in per_set.values() if isinstance(v, dict) for k in v})
        rows = [[name, *(v.get(c, "") if isinstance(v, dict) else v for c in columns)] for name, v in per_set.items()]
        lines += ["", *_table(["evaluation set", *columns], rows)]
    other = {k: v for k, v in report.items() if k != "eval_sets" and not isinstance(v, (dict, list))}
    lines += ["", *(f"- {text(k)}: {text(v)}" for k, v in sorted(other.items()))]
    return lines


def _classes(stats: dict[str, Any], config: BalanceConfig, label_set: LabelSet, plot_name: str) -> list[str]:
    lines = ["", "## Classes short of their minimum", ""]
    if stats["short_classes"]:
        rows = [[s["class_id"], s["name"], s["count"], s["minimum"], s["deficit"]] for s in stats["short_classes"]]
        lines += _table(["class id", "name", "samples", "minimum", "deficit"], rows)
    else:
        lines.append("None." if (config.min_per_class or config.balance == "equal") else "No minimum was set.")
    lines += ["", "## Per-class counts", "", f"![per-class counts before and after]({plot_name})", ""]
    lines += ["`available`: eligible samples after de-duplication; then the selected samples by source.", ""]
    names = list(stats["sources"])
    rows = []
    for cid in label_set.ids:
        c = stats["per_class"][str(cid)]
        by = [int(c["by_source"].get(n, 0)) for n in names]
        rows.append([cid, label_set.names.get(cid, ""), int(c["available"]), int(c["selected"]), *by])
    return lines + _table(["class id", "name", "available", "selected", *names], rows)


def _attribution(stats: dict[str, Any], attribution: list[dict[str, str]]) -> list[str]:
    lines = ["", "## Attribution (CC BY licences)", ""]
    if not attribution:
        return [*lines, "No selected sample carries a CC BY licence."]
    shown, total = attribution[:MAX_ATTRIBUTION_IN_CARD], stats["cc_by_samples"]
    lines.append(
        f"{total:,} sample(s) carry a licence that requires attribution; all are listed in "
        f"`{ATTRIBUTION_TSV}`" + (f", the first {len(shown):,} here." if len(shown) < total else ".")
    )
    lines.append("")
    lines += [
        f'- "{text(a["title"]) or "untitled"}" by {text(a["owner"]) or "unknown"}, {text(a["url"])}, '
        f"{text(a['license'])} ({code(a['key'])})"
        for a in shown
    ]
    return lines


def _provenance(out: Path, stats: dict[str, Any]) -> list[str]:
    built = stats.get("provenance") or {}
    lines = ["", "## How this dataset was built", ""]
    lines.append(f"janus-build {text(built.get('janus_build_version'))}, Python {text(built.get('python'))}.")
    if built.get("command"):
        lines += ["", "```sh", _shell(built["command"]).replace("```", "` ` `"), "```"]
    upstream = built.get("upstream") or []
    if upstream:
        lines += ["", "Upstream janus stages (their `_manifest.json` holds each one's options):", ""]
        rows = [
            [u["source"], u["stage"], u.get("janus_build_version") or "", Markup(code(u["directory"]))]
            for u in upstream
        ]
        lines += _table(["source", "stage", "janus-build", "directory"], rows)
    train_shards = stats["shards"]["train"]
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "import webdataset as wds",
        f"ds = wds.WebDataset({json.dumps(f'{out.name}/train/{{00000..{max(0, len(train_shards) - 1):05d}}}.tar')})"
        '.decode("pil").to_tuple("jpg", "cls", "txt")',
        "```",
        "",
    ]
    return lines


def _shell(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(str(a)) for a in argv)


def write_card(
    out: Path,
    config: BalanceConfig,
    stats: dict[str, Any],
    label_set: LabelSet,
    attribution: list[dict[str, str]],
    plot_name: str,
) -> None:
    """Write ``README.md`` (the dataset card) into ``out``; ``attribution`` holds the first
    :data:`MAX_ATTRIBUTION_IN_CARD` CC BY entries (``ATTRIBUTION.tsv`` has them all)."""
    lines = [
        *hf_header(out, stats, label_set),
        *_summary(out, config, stats, label_set),
        *_sources(stats),
        *_labels_and_licences(stats),
        *_validation_and_contamination(stats),
        *_classes(stats, config, label_set, plot_name),
        *_attribution(stats, attribution),
        *_provenance(out, stats),
    ]
    atomic_write_bytes(out / "README.md", "\n".join(lines).encode("utf-8"))
