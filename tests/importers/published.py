"""Miniature files in the exact formats the paper's sources publish, quirks included.

Used by the importer tests and (scaled up) by benchmarks/bench_import.py. Every writer takes
rows and writes the bytes a researcher downloads: YFCC100M's tab-separated parts (Webscope, 23
fields; Multimedia Commons, 25) and OpenAI's subset list, LAION parquet, Open Images CSVs and
Localized Narratives JSONL, ImageNet-Captions' JSON list.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

# --- YFCC100M -------------------------------------------------------------------------------
YFCC_FIELDS = (
    "photo_id",
    "owner",
    "owner_name",
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "tags",
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "page_url",
    "url",
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension",
    "marker",
)
BY_NC_SA = ("Attribution-NonCommercial-ShareAlike License", "http://creativecommons.org/licenses/by-nc-sa/2.0/")
BY = ("Attribution License", "http://creativecommons.org/licenses/by/2.0/")


def yfcc_photo(photo_id: int, title: str, description: str = "", tags: tuple[str, ...] = (), **kw: Any) -> dict:
    """One YFCC100M record with its free text URL-encoded as Yahoo published it."""
    licence = kw.pop("licence", BY)
    record = {
        "photo_id": str(photo_id),
        "owner": f"{photo_id % 97}@N0{photo_id % 7}",
        "owner_name": quote_plus(kw.pop("owner_name", f"user {photo_id % 97}")),
        "date_taken": kw.pop("date_taken", "2010-06-11 21:52:26.0"),
        "date_uploaded": "1276302746",
        "capture_device": quote_plus("Canon EOS 400D"),
        "title": quote_plus(title),
        "description": quote_plus(description),
        "tags": ",".join(quote_plus(t) for t in tags),
        "machine_tags": "",
        "longitude": "",
        "latitude": "",
        "accuracy": "",
        "page_url": f"http://www.flickr.com/photos/{photo_id % 97}@N0{photo_id % 7}/{photo_id}/",
        "url": f"http://farm5.staticflickr.com/4040/{photo_id}_0123456789.jpg",
        "license_name": licence[0],
        "license_url": licence[1],
        "server_id": "4040",
        "farm_id": "5",
        "secret": "0123456789",
        "secret_original": "abcdef0123",
        "extension": "jpg",
        "marker": kw.pop("marker", "0"),
    }
    record.update(kw)
    return record


def yfcc_quirky_photos() -> list[dict]:
    """A dozen photos with every quirk of the published text (see the test for the decoded text)."""
    return [
        yfcc_photo(100, "A lion at the zoo", "Shark week\nsecond line & more", ("big cat", "lion")),
        yfcc_photo(101, "éléphant d'Afrique", '<a href="http://x.org">my</a> &quot;flamingo&quot; pics'),
        yfcc_photo(102, "", "", ()),  # empty text fields
        yfcc_photo(103, "Old goose", date_taken="null"),
        yfcc_photo(104, "Future goose", date_taken="4501-01-01 00:00:00.0"),
        yfcc_photo(105, "A video of a lion", marker="1"),
        yfcc_photo(106, "Teapot 100%", "50% off + free", ("tea pot", "100%"), licence=BY_NC_SA),
        yfcc_photo(107, "great white shark", "", ("ocean",), licence=("All Rights Reserved", "")),
        yfcc_photo(108, "Tiger", "Shark week", ()),
        yfcc_photo(109, "daisy", "a flower", ("spring", "flower"), owner_name="Zoë"),
        yfcc_photo(110, "banana+split", "", ()),
        yfcc_photo(111, "snow", "nothing here", ()),
    ]


def yfcc_line(record: dict, layout: str = "webscope", line_number: int = 0) -> str:
    fields = [record[f] for f in YFCC_FIELDS]
    if layout == "mmc":  # Multimedia Commons: line number, photo id, photo hash, then the rest
        import hashlib

        digest = hashlib.md5(record["url"].encode()).hexdigest()
        fields = [str(line_number), fields[0], digest, *fields[1:]]
    return "\t".join(fields) + "\n"


def write_text(path: Path, lines: Iterable[str]) -> Path:
    """Write lines, compressed as the file name says (.bz2, .gz or plain)."""
    data = "".join(lines).encode("utf-8")
    if path.name.endswith(".bz2"):
        data = bz2.compress(data)
    elif path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_yfcc(path: Path, records: Iterable[dict], layout: str = "webscope") -> Path:
    return write_text(path, (yfcc_line(r, layout, i) for i, r in enumerate(records)))


def write_yfcc_subset(path: Path, records: Iterable[dict]) -> Path:
    """OpenAI's yfcc100m_subset_data.tsv: line number, photo id, photo hash (no header)."""
    import hashlib

    return write_text(
        path,
        (f"{i}\t{r['photo_id']}\t{hashlib.md5(r['url'].encode()).hexdigest()}\n" for i, r in enumerate(records)),
    )


def write_yfcc_parquet(path: Path, records: Iterable[dict], clean: bool = True) -> Path:
    """A parquet re-release of the 15M subset: the 23 fields as strings (dalle-mini names) + key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = {
        "photo_id": "photoid",
        "owner": "uid",
        "owner_name": "unickname",
        "date_taken": "datetaken",
        "date_uploaded": "dateuploaded",
        "capture_device": "capturedevice",
        "tags": "usertags",
        "machine_tags": "machinetags",
        "page_url": "pageurl",
        "url": "downloadurl",
        "license_name": "licensename",
        "license_url": "licenseurl",
        "server_id": "serverid",
        "farm_id": "farmid",
        "secret_original": "secretoriginal",
        "extension": "ext",
    }
    rows = []
    for i, record in enumerate(records):
        row = {names.get(f, f): record[f] for f in YFCC_FIELDS}
        row["key"] = f"{i:09d}"
        row["img"] = b"\xff\xd8\xff\xe0 not utf-8 \x80\x81"  # dalle-mini's release carries the image bytes
        if clean:
            row["title_clean"] = record["title"].replace("+", " ").lower()
            row["description_clean"] = record["description"].replace("+", " ").lower()
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- LAION ----------------------------------------------------------------------------------
def laion400m_rows(n: int, start: int = 0) -> list[dict]:
    """LAION-400M's columns: SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity."""
    texts = ["a lion resting", "great white shark photo", "teapot on a table", "a sunset", "Éclair au café"]
    licences = ["?", "CC BY 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/", "?", ""]
    nsfw = ["UNLIKELY", "UNLIKELY", "NSFW", "UNSURE", "UNLIKELY"]
    return [
        {
            "SAMPLE_ID": 3_000_000 + i,
            "URL": f"https://example.com/img/{i}.jpg",
            "TEXT": texts[i % 5],
            "HEIGHT": 256,
            "WIDTH": 320,
            "LICENSE": licences[i % 5],
            "NSFW": nsfw[i % 5],
            "similarity": 0.3 + (i % 7) / 100,
        }
        for i in range(start, start + n)
    ]


def laion2b_rows(n: int, start: int = 0) -> list[dict]:
    """LAION-2B-en (with safety): URL, TEXT, WIDTH, HEIGHT, similarity, hash, punsafe, pwatermark."""
    texts = ["lion cub", "bagel with cream cheese", "random words", "pizza night"]
    return [
        {
            "URL": f"https://cdn.example.org/{i}.png",
            "TEXT": texts[i % 4],
            "WIDTH": 512,
            "HEIGHT": 384,
            "similarity": 0.31,
            "hash": -5_000_000_000_000 + 7 * i,
            "punsafe": (i % 10) / 10,
            "pwatermark": 0.05,
        }
        for i in range(start, start + n)
    ]


# --- Open Images ----------------------------------------------------------------------------
OI_IMAGE_COLUMNS = (
    "ImageID",
    "Subset",
    "OriginalURL",
    "OriginalLandingURL",
    "License",
    "AuthorProfileURL",
    "Author",
    "Title",
    "OriginalSize",
    "OriginalMD5",
    "Thumbnail300KURL",
    "Rotation",
)


def oi_image(image_id: str, title: str, author: str = "Jane Doe", **kw: Any) -> dict:
    row = {
        "ImageID": image_id,
        "Subset": "train",
        "OriginalURL": f"https://farm3.staticflickr.com/1/{image_id}_o.jpg",
        "OriginalLandingURL": f"https://www.flickr.com/photos/someone/{int(image_id, 16) % 10**9}",
        "License": "https://creativecommons.org/licenses/by/2.0/",
        "AuthorProfileURL": "https://www.flickr.com/people/someone/",
        "Author": author,
        "Title": title,
        "OriginalSize": "123456",
        "OriginalMD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "Thumbnail300KURL": f"https://c1.staticflickr.com/1/{image_id}_z.jpg",
        "Rotation": "0.0",
    }
    row.update(kw)
    return row


def write_csv(path: Path, header: Iterable[str] | None, rows: Iterable[Iterable[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_oi_images(path: Path, rows: Iterable[dict]) -> Path:
    return write_csv(path, OI_IMAGE_COLUMNS, ([r[c] for c in OI_IMAGE_COLUMNS] for r in rows))


def write_oi_labels(path: Path, rows: Iterable[tuple[str, str, int]], source: str = "verification") -> Path:
    """Human image-level labels: ImageID, Source, LabelName, Confidence."""
    return write_csv(path, ("ImageID", "Source", "LabelName", "Confidence"), ((i, source, m, c) for i, m, c in rows))


def write_oi_classes(path: Path, rows: Iterable[tuple[str, str]], header: bool = True) -> Path:
    """Class descriptions: V7 has the header LabelName,DisplayName; older releases none."""
    return write_csv(path, ("LabelName", "DisplayName") if header else None, rows)


def write_narratives(path: Path, rows: Iterable[tuple[str, str]]) -> Path:
    """Localized Narratives JSONL (one object per line, keys as Google publishes them)."""
    lines = []
    for n, (image_id, caption) in enumerate(rows):
        record = {
            "dataset_id": "mscoco_val2017" if image_id.startswith("coco") else "open_images_train_v6",
            "image_id": image_id,
            "annotator_id": 90 + n % 3,
            "caption": caption,
            "timed_caption": [{"utterance": caption.split(" ")[0], "start_time": 0.0, "end_time": 0.4}],
            "traces": [[{"x": 0.1, "y": 0.2, "t": 0.5}]],
            "voice_recording": f"open_images_train_v6/{image_id}_{90 + n % 3}.ogg",
        }
        lines.append(json.dumps(record) + "\n")
    return write_text(path, lines)


# --- ImageNet-Captions ----------------------------------------------------------------------
def write_imagenet_captions(path: Path, records: list[dict], *, zipped: bool = False) -> Path:
    """imagenet_captions.json: one JSON list, indented, non-ASCII as \\u escapes (json.dump's
    defaults, as the authors wrote it); keys in the published order, or shuffled by the caller."""
    text = json.dumps(records, indent=4)
    if zipped:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("imagenet_captions.json", text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def caption_record(wnid: str, filename: str, title: str, tags: list[str], description: str = "") -> dict:
    return {"filename": filename, "title": title, "tags": tags, "description": description, "wnid": wnid}


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- img2dataset, as it writes a download ----------------------------------------------------
def fake_img2dataset(url_list: Path, out: Path, save_columns: Iterable[str], image_for: Any) -> Path:
    """Write what ``img2dataset --input_format parquet --output_format webdataset`` writes for
    ``url_list`` (no network): ``00000.tar`` (``<key>.jpg/.txt/.json``), ``00000.parquet`` with
    url, caption, key, status, error_message and the saved columns, ``00000_stats.json``.
    ``image_for(row)`` gives each row's image bytes (None: a failed download)."""
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rows = pq.read_table(url_list).to_pylist()
    meta = []
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for n, row in enumerate(rows):
            data = image_for(row)
            record = {
                "url": row.get("url") or row.get("URL"),
                "caption": row.get("TEXT") or row.get("title"),
                "key": f"{n:09d}",
                "status": "success" if data else "failed_to_download",
                "error_message": None if data else "HTTP Error 404: Not Found",
                **{c: row.get(c) for c in save_columns},
            }
            meta.append(record)
            if not data:
                continue
            for ext, payload in (("jpg", data), ("json", json.dumps(record).encode())):
                info = tarfile.TarInfo(f"{record['key']}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    (out / "00000.tar").write_bytes(buffer.getvalue())
    pq.write_table(pa.Table.from_pylist(meta), out / "00000.parquet")
    (out / "00000_stats.json").write_text(json.dumps({"count": len(meta), "successes": len(meta)}))
    return out
