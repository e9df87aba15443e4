"""Caption sources of ``janus balance``: which text becomes a sample's ``txt`` (the paper's Table 9).

A caption *policy* names where the text comes from:

- ``columns``: the first non-empty column of the source's ``caption=COL|COL`` list (the
  default list when none is given); the behaviour before policies existed.
- ``gtcaps``: ``--caption-template`` (default ``"a photo of a {}."``) filled with the class name
  of the sample's label (ground-truth captions from the labels).
- ``classname-only``: the class name and nothing else.
- ``ttd``: title + tags + description (Flickr text), joined by spaces; where a sample has none of
  them, its alt-text (``TEXT``/``text``/``caption``, LAION's and YFCC's text columns).
- ``title``, ``tags``: that Flickr field only.
- ``blipcap``: ``janus caption``'s spell-checked BLIP caption (``caption_blip`` where the
  spell-checked one is absent).
- ``annotcap``: a human descriptive caption (``annot_caption``, e.g. OpenImages' localized
  narratives imported per image).
- ``prose``: ``janus caption``'s ``prose_caption`` (BLIP caption merged with the title).
- ``blipcap+annotcap``: the human caption where there is one, else the BLIP caption (the
  paper's ``oi100-VL-blipcap+annotcap``).

``--empty-caption`` says what happens to a sample whose policy yields no text: ``keep`` (an
empty ``txt``; ``janus train --loss vl`` skips such samples), ``drop`` (the sample stays a row
of the index with status ``no_caption`` and no tar member, counted in the card), or
``fallback:POLICY`` (that policy's text instead, e.g. ``fallback:gtcaps``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from janus_build.errors import ConfigError

POLICIES = (
    "columns",
    "gtcaps",
    "classname-only",
    "ttd",
    "title",
    "tags",
    "blipcap",
    "annotcap",
    "prose",
    "blipcap+annotcap",
)
DEFAULT_TEMPLATE = "a photo of a {}."
NO_CAPTION = "no_caption"  # the index status of a sample dropped by --empty-caption drop

TITLE_COLUMNS = ("title", "TITLE")
TAG_COLUMNS = ("tags", "TAGS")
DESCRIPTION_COLUMNS = ("description", "DESCRIPTION")
ALT_TEXT_COLUMNS = ("TEXT", "text", "alt_text", "caption")
BLIP_COLUMNS = ("caption_blip_spellchecked", "caption_blip")
ANNOT_COLUMNS = ("annot_caption", "annotation_caption", "human_caption")
PROSE_COLUMNS = ("prose_caption",)
#: every column a policy may read (read from caption tables and image indexes besides the row)
TEXT_COLUMNS = tuple(
    dict.fromkeys(
        (
            *TITLE_COLUMNS,
            *TAG_COLUMNS,
            *DESCRIPTION_COLUMNS,
            *ALT_TEXT_COLUMNS,
            *BLIP_COLUMNS,
            *ANNOT_COLUMNS,
            *PROSE_COLUMNS,
        )
    )
)
_TAGS_RE = re.compile(r"<[^>]*>")


def check_policy(value: str, flag: str) -> None:
    """Raise ConfigError unless ``value`` is a policy name."""
    if value not in POLICIES:
        raise ConfigError(f"{flag} {value!r}: expected one of {', '.join(POLICIES)}")


def check_empty_policy(value: str) -> None:
    """``--empty-caption``: keep, drop or fallback:POLICY."""
    if value in ("keep", "drop"):
        return
    kind, sep, target = value.partition(":")
    if kind != "fallback" or not sep:
        raise ConfigError(f"--empty-caption {value!r}: expected keep, drop or fallback:POLICY (e.g. fallback:gtcaps)")
    check_policy(target, "--empty-caption fallback:")


def check_template(template: str) -> None:
    """``--caption-template`` must hold exactly one ``{}`` (the class name)."""
    if template.count("{}") != 1:
        raise ConfigError(f"--caption-template {template!r}: expected exactly one {{}} for the class name")


def _text(value: Any) -> str:
    """A cell as clean one-line text: lists joined by spaces, HTML tags and entities removed."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value if v is not None)
    text = html.unescape(_TAGS_RE.sub(" ", str(value)))
    return " ".join(text.split())


def _first(layers: tuple[Mapping[str, Any], ...], names: tuple[str, ...]) -> str:
    for layer in layers:
        for name in names:
            text = _text(layer.get(name))
            if text:
                return text
    return ""


@dataclass(frozen=True)
class CaptionRule:
    """How one source's captions are made; :meth:`caption` returns ``(text, field)``."""

    policy: str = "columns"
    columns: tuple[str, ...] = ()
    template: str = DEFAULT_TEMPLATE
    empty: str = "keep"

    def caption(
        self, row: Mapping[str, Any], stage_row: Mapping[str, Any] | None, class_name: str
    ) -> tuple[str, str | None]:
        """``(caption, what it came from)``; ``("", None)`` when there is none (and no fallback gives one)."""
        layers = (row,) if stage_row is None else (row, stage_row)
        text, field = self._apply(self.policy, layers, class_name)
        if not text and self.empty.startswith("fallback:"):
            text, field = self._apply(self.empty.split(":", 1)[1], layers, class_name)
        return text, field

    def _apply(self, policy: str, layers: tuple[Mapping[str, Any], ...], class_name: str) -> tuple[str, str | None]:
        if policy == "columns":
            for name in self.columns:
                text = _first(layers, (name,))
                if text:
                    return text, name
            return "", None
        text = _policy_text(policy, layers, class_name, self.template)
        return (text, policy) if text else ("", None)


def _policy_text(policy: str, layers: tuple[Mapping[str, Any], ...], class_name: str, template: str) -> str:
    if policy == "gtcaps":
        return template.format(class_name) if class_name else ""
    if policy == "classname-only":
        return class_name
    if policy == "ttd":
        parts = [_first(layers, names) for names in (TITLE_COLUMNS, TAG_COLUMNS, DESCRIPTION_COLUMNS)]
        return " ".join(p for p in parts if p) or _first(layers, ALT_TEXT_COLUMNS)
    if policy == "blipcap+annotcap":
        return _first(layers, ANNOT_COLUMNS) or _first(layers, BLIP_COLUMNS)
    columns = {
        "title": TITLE_COLUMNS,
        "tags": TAG_COLUMNS,
        "blipcap": BLIP_COLUMNS,
        "annotcap": ANNOT_COLUMNS,
        "prose": PROSE_COLUMNS,
    }[policy]
    return _first(layers, columns)
