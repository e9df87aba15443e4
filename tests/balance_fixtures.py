"""Small generated sources for the balance tests: IN100-like ground truth, tagged Flickr, matched LAION."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from janus_build import schemas
from janus_build.core.shards import ImageShardWriter
from janus_build.demo.images import class_image

CLASSES = (2, 6, 8, 13)  # IN100 class ids (great white shark, stingray, hen, junco)
GT_COUNTS = {2: 12, 6: 3, 8: 8, 13: 1}
FLICKR_PER_CLASS = 6
LAION_PER_CLASS = {2: 2, 6: 5, 8: 4, 13: 6}
SIZE = 24


def label_file(tmp: Path) -> Path:
    path = tmp / "four.tsv"
    path.write_text("class_id\tname\n2\tgreat white shark\n6\tstingray\n8\then\n13\tjunco\n")
    return path


def make_ground_truth(root: Path, counts: dict[int, int] = GT_COUNTS, shard_size: int = 10) -> Path:
    directory = root / "in100"
    rows = [(c, i) for c in sorted(counts) for i in range(counts[c])]
    for s in range(0, len(rows), shard_size):
        with ImageShardWriter(directory, f"{s // shard_size:05d}") as writer:
            for c, i in rows[s : s + shard_size]:
                writer.write(f"in100-{c}-{i}", class_image(c, i, SIZE), {"label": c, "title": None, "url": None})
    return directory


def make_flickr(root: Path, *, duplicate_of_gt: bool = True) -> tuple[Path, Path, Path]:
    """A fetch-like image stage, a tags table and a caption shard. Photo 1000 repeats an IN100
    image byte for byte (exact-hash duplicate); photos 1001/1002 share a photo id with each other."""
    directory = root / "flickr" / "images"
    tag_rows = []
    caption_rows = []
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    with ImageShardWriter(directory, "00000") as writer:
        pid = 1000
        for c in CLASSES:
            for i in range(FLICKR_PER_CLASS):
                key = f"flickr-{pid}"
                image = class_image(c, 0, SIZE) if (duplicate_of_gt and pid == 1000) else class_image(c, 500 + i, SIZE)
                licence = "Attribution License" if i % 2 == 0 else "Attribution-NonCommercial License"
                if i == 5:
                    licence = "Public Domain Mark"
                writer.write(
                    key,
                    image,
                    {
                        "class_id": c,
                        "photo_id": str(pid),
                        "title": f"my {c} photo {i}",
                        "description": "",
                        "tags": "x",
                        "owner": f"owner{i}",
                        "owner_name": f"Owner Name {i}",
                        "page_url": f"https://www.flickr.com/photos/owner{i}/{pid}",
                        "license": licence,
                        "url": f"https://live.staticflickr.com/1/{pid}_b.jpg",
                    },
                )
                # annotator a says in for i < 4; i == 3: annotator b says out (disagreement -> dropped); i == 4: unsure
                decision = "in" if i < 4 else ("unsure" if i == 4 else "out")
                tag_rows.append({"key": key, "class_id": c, "decision": decision, "annotator": "a", "time": t0})
                if i == 3:
                    tag_rows.append({"key": key, "class_id": c, "decision": "out", "annotator": "b", "time": t0})
                if i == 1:  # annotator a changed their mind later: out -> in (latest wins)
                    tag_rows.insert(
                        -1,
                        {
                            "key": key,
                            "class_id": c,
                            "decision": "out",
                            "annotator": "a",
                            "time": t0 - dt.timedelta(days=1),
                        },
                    )
                caption_rows.append(
                    {
                        "key": key,
                        "caption_blip": f"a blurry {c}",
                        "caption_blip_spellchecked": f"a blurry {c}",
                        "caption_blip_title": f"a blurry {c}, my {c} photo {i}",
                        "prose_caption": None,
                        "status": "success",
                        "error_message": None,
                    }
                )
                pid += 1
    tags = root / "tags.parquet"
    pq.write_table(pa.Table.from_pylist(tag_rows, schema=schemas.TAGS), tags)
    captions = root / "captions"
    captions.mkdir()
    pq.write_table(pa.Table.from_pylist(caption_rows, schema=schemas.CAPTIONS), captions / "00000.parquet")
    return directory, tags, captions


def make_laion(root: Path, *, missing: int = 1, strategy: str = "sc") -> tuple[Path, Path]:
    """A match output (URL, TEXT, LICENSE "?", key, label, labels, matched_terms) and an image stage
    with the downloaded images (odd rows with license/title/owner columns); ``missing`` matched
    rows have no image bytes, one row is unlabelled."""
    match_dir = root / "laion_match"
    match_dir.mkdir(parents=True)
    images = root / "laion_images"
    rows = []
    n = 0
    for c in CLASSES:
        for i in range(LAION_PER_CLASS[c]):
            rows.append(
                {
                    "URL": f"http://example.com/{n}.jpg",
                    "TEXT": f"photo of a thing {c} number {i}",
                    "LICENSE": "?",
                    "key": f"laion-00000-{n}",
                    "label": c,
                    "labels": [c],
                    "matched_terms": ["thing"],
                }
            )
            n += 1
    rows.append(
        {
            "URL": "http://example.com/none.jpg",
            "TEXT": "nothing",
            "LICENSE": "?",
            "key": "laion-00000-999",
            "label": -1,
            "labels": [],
            "matched_terms": [],
        }
    )
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.schema.get_field_index("label"), "label", table.column("label").cast(pa.int32()))
    pq.write_table(table, match_dir / "00000.parquet")
    (match_dir / "manifest.json").write_text(json.dumps({"stage": "match", "config": {"strategy": strategy}}))
    with ImageShardWriter(images, "00000") as writer:
        for j, row in enumerate(rows):
            if row["label"] < 0:
                continue
            if j < missing:
                writer.write(row["key"], None, {"url": row["URL"]}, status="failed_to_download", error_message="404")
            else:
                # the download recorded a licence and title for odd rows; the match output has neither
                extra = {"license": "CC BY 4.0", "title": f"laion title {j}", "owner": f"site{j}"} if j % 2 else {}
                writer.write(
                    row["key"],
                    class_image(row["label"], 900 + j, SIZE, fmt="PNG" if j == 3 else "JPEG"),
                    {"url": row["URL"], **extra},
                    image_ext="png" if j == 3 else "jpg",
                )
    return match_dir, images


def make_all(root: Path) -> dict[str, Path]:
    gt = make_ground_truth(root)
    flickr, tags, captions = make_flickr(root)
    match_dir, laion_images = make_laion(root)
    return {
        "gt": gt,
        "flickr": flickr,
        "tags": tags,
        "captions": captions,
        "match": match_dir,
        "laion": laion_images,
        "labels": label_file(root),
    }
