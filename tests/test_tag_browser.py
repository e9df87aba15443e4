"""End to end in headless Chromium: a 1,000-image class tagged with the keyboard alone, and the
page at a desktop (1280x800) and a phone (390x844, touch) size.

The server runs as a real ``janus tag serve`` process that the test SIGKILLs mid-queue and
restarts; every decision must survive, the page must resume where it stopped, the XSS title
must show as text, two tabs must never be shown the same image, and the Table 8 figures and the
export must equal the decisions made. The showcase tests drive the on-screen buttons, swipes,
taps and zoom, check that a held key decides one image only and that a late reply never
overwrites the recent-decisions strip, and save the screenshots docs/tag.md shows (into
``$JANUS_TAG_SCREENSHOTS`` when set, e.g. ``docs/img``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from tag_fixtures import XSS_TITLE, key, known_decision, make_stage

from janus_build.tag.db import TagQueue, default_db_path

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BIG_CLASS, SMALL_CLASS, BIG, SMALL = 1, 291, 1000, 30
KEYS = {"in": "i", "out": "o", "unsure": "u"}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``janus tag serve`` in a subprocess (started, SIGKILLed and restarted by the test)."""

    def __init__(self, stage: Path, port: int, *extra: str) -> None:
        self.stage, self.port, self.process, self.extra = stage, port, None, list(extra)
        self.url = f"http://127.0.0.1:{port}/"

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "janus_build",
            "tag",
            "serve",
            str(self.stage),
            "--port",
            str(self.port),
            "--annotator",
            "alice",
            "--overlap",
            "0",
            *self.extra,
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read()}")
            try:
                if httpx.get(self.url + "api/config", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start within 60 s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    stage = make_stage(
        tmp_path_factory.mktemp("tagui") / "fetch", {BIG_CLASS: BIG, SMALL_CLASS: SMALL}, shards=3, size=12
    )
    server = Server(stage, _free_port())
    server.start()
    yield server
    server.stop()


def _current(page) -> str:
    return page.evaluate("document.body.dataset.currentKey")


def _decide(page, decision: str) -> str:
    before = _current(page)
    page.keyboard.press(KEYS[decision])
    page.wait_for_function("k => document.body.dataset.currentKey !== k", arg=before, timeout=15000)
    return before


def _open(browser, url: str, class_id: int):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.state !== 'loading'", timeout=15000)
    if page.evaluate("window.__janus.classId") != class_id:
        page.select_option("#class-select", str(class_id))
        page.wait_for_function(
            "c => window.__janus.classId === c && document.body.dataset.state === 'ready'", arg=class_id
        )
    return context, page, errors


def _decisions(stage: Path) -> dict[str, str]:
    with TagQueue(default_db_path(stage)) as queue:
        return {r[0]: r[2] for r in queue.decisions()}


def test_keyboard_tagging_of_a_1000_image_class_survives_a_killed_server(browser, served, tmp_path):
    context, page, errors = _open(browser, served.url, BIG_CLASS)
    # The XSS probe is the class's first image: its title shows as text and runs nothing.
    assert _current(page) == key(BIG_CLASS, 0)
    assert page.text_content("#title") == XSS_TITLE
    assert page.locator("#title script, #title img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.locator("#credit a").count() == 2  # licence and Flickr page; never the javascript: "page_url"
    assert page.locator("#credit a[href^=javascript]").count() == 0

    expected: dict[str, str] = {}
    for _ in range(40):  # single view: one key per decision, auto-advance
        k = _current(page)
        expected[k] = known_decision(k)
        _decide(page, expected[k])
    last = list(expected)[-1]
    page.keyboard.press("Backspace")  # undo brings the last image back
    page.wait_for_function("k => document.body.dataset.currentKey === k", arg=last)
    del expected[last]
    assert last not in _decisions(served.stage)
    expected[last] = "out" if known_decision(last) != "out" else "in"
    _decide(page, expected[last])
    # Edit a recent decision from the strip (the newest card is the decision just made).
    page.wait_for_selector(f'.recent[data-key="{last}"]')
    page.click(f'.recent[data-key="{last}"] button[data-decision="unsure"]')
    page.wait_for_selector(f'.recent[data-key="{last}"] button.on[data-decision="unsure"]')
    expected[last] = "unsure"
    assert _decisions(served.stage) == expected

    # Kill the server mid-queue: the next key is refused visibly, nothing advances, nothing is lost.
    served.kill()
    stuck = _current(page)
    page.keyboard.press("i")
    page.wait_for_function("() => document.getElementById('status').className === 'error'")
    assert _current(page) == stuck
    assert _decisions(served.stage) == expected
    served.start()
    expected[stuck] = known_decision(stuck)
    _decide(page, expected[stuck])  # the same key again, now saved
    held = _current(page)
    page.reload()  # a reloaded tab resumes with the image it was showing
    page.wait_for_selector("body[data-state=ready]")
    assert _current(page) == held

    # Grid mode for the rest: mark only the out (and unsure) images, commit each page with Enter.
    page.keyboard.press("g")
    page.wait_for_selector(".cell")
    assert not page.is_visible("#single-view") and page.is_visible("#btn-commit")  # the grid replaces the image
    undone_once = False
    while page.evaluate("document.body.dataset.state") == "ready":
        keys = page.evaluate("document.body.dataset.pageKeys").split(",")
        cursor = 0
        for index, k in enumerate(keys):
            decision = known_decision(k)
            if decision == "in":
                continue
            for _ in range(index % 5 - cursor % 5):
                page.keyboard.press("ArrowRight")
            for _ in range(cursor % 5 - index % 5):
                page.keyboard.press("ArrowLeft")
            for _ in range(index // 5 - cursor // 5):
                page.keyboard.press("ArrowDown")
            cursor = index
            page.keyboard.press("x" if decision == "out" else "u")
        assert page.locator(".cell.out").count() == sum(known_decision(k) == "out" for k in keys)
        page.keyboard.press("Enter")
        page.wait_for_function("k => document.body.dataset.pageKeys !== k", arg=",".join(keys), timeout=15000)
        if not undone_once:  # undo the whole page once, then commit it again
            page.keyboard.press("Backspace")
            page.wait_for_function("k => document.body.dataset.pageKeys === k", arg=",".join(keys))
            assert not set(keys) & set(_decisions(served.stage))
            page.keyboard.press("Enter")  # marks are gone: all in, then fix with the strip below
            page.wait_for_function("k => document.body.dataset.pageKeys !== k", arg=",".join(keys))
            undone_once = True
            for k in keys:
                expected[k] = "in"
            continue
        for k in keys:
            expected[k] = known_decision(k)
    assert page.text_content("#empty") and page.evaluate("document.body.dataset.state") == "done"
    page.wait_for_function("() => document.getElementById('progress').dataset.remaining === '0'")
    page.screenshot(path=str(tmp_path / "grid-done.png"))
    assert errors == []
    context.close()

    decided = _decisions(served.stage)
    assert len(expected) == BIG and {k for k in decided if k.startswith(f"flickr-{BIG_CLASS}x")} == set(expected)
    assert {k: decided[k] for k in expected} == expected

    # Table 8 figures and the export equal the decisions made in the page.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "janus_build",
            "tag",
            "stats",
            str(served.stage),
            "--json",
            str(tmp_path / "stats.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    row = next(r for r in json.loads((tmp_path / "stats.json").read_text())["classes"] if r["class_id"] == BIG_CLASS)
    good = sum(d == "in" for d in expected.values())
    assert (row["good"], row["total"], row["available"], row["remaining"]) == (good, BIG, 10 * BIG + 7, 0)
    assert row["pct_good"] == round(100 * good / BIG, 2)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "janus_build",
            "tag",
            "export",
            str(served.stage),
            "--out",
            str(tmp_path / "tags.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    table = pq.read_table(tmp_path / "tags.parquet").to_pylist()
    assert {r["key"]: r["decision"] for r in table if r["class_id"] == BIG_CLASS} == expected
    assert {r["annotator"] for r in table} == {"alice"}


def test_two_tabs_never_get_the_same_image(browser, served):
    tab_a, page_a, _ = _open(browser, served.url, SMALL_CLASS)
    tab_b, page_b, _ = _open(browser, served.url, SMALL_CLASS)
    seen = {"a": [], "b": []}
    for _ in range(SMALL):
        for name, page, decision in (("a", page_a, "in"), ("b", page_b, "out")):
            if page.evaluate("document.body.dataset.state") == "ready":
                seen[name].append(_decide(page, decision))
    assert not set(seen["a"]) & set(seen["b"])
    assert sorted(seen["a"] + seen["b"]) == sorted(key(SMALL_CLASS, j) for j in range(SMALL))
    decided = _decisions(served.stage)
    assert all(decided[k] == "in" for k in seen["a"]) and all(decided[k] == "out" for k in seen["b"])
    tab_a.close()
    tab_b.close()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A second, untouched queue (the module's other tests use up theirs)."""
    stage = make_stage(tmp_path_factory.mktemp("tagfresh") / "fetch", {FRESH_CLASS: 40}, size=12)
    server = Server(stage, _free_port())
    server.start()
    yield server
    server.stop()


FRESH_CLASS = 7


def test_a_duplicated_tab_gets_its_own_images(browser, fresh):
    # Chrome's "Duplicate tab" (and window.open) copies sessionStorage, where the tab id lives.
    tab, page_a, _ = _open(browser, fresh.url, FRESH_CLASS)
    client = page_a.evaluate("window.__janus.client")
    page_b = tab.new_page()
    page_b.add_init_script(f"sessionStorage.setItem('janus-client', {json.dumps(client)})")
    page_b.goto(fresh.url)
    page_b.wait_for_selector("body[data-state=ready]")
    assert page_b.evaluate("window.__janus.client") != client
    held_a = set(page_a.evaluate("window.__janus.queue.map(i => i.key)")) | {_current(page_a)}
    assert _current(page_b) not in held_a
    tab.close()


def test_reference_strip_shows_only_images_a_second_annotator_confirmed(browser, fresh):
    tab, page, _ = _open(browser, fresh.url, FRESH_CLASS)
    page.wait_for_function("() => window.__janus.refSource === 'confirmed'", timeout=10000)
    assert page.locator("#ref-images img").count() == 0
    first = _decide(page, "in")  # alice's "in" alone (perhaps a slip) is no reference
    _decide(page, "out")
    page.wait_for_function("() => document.getElementById('progress').dataset.done === '2'")
    assert page.locator("#ref-images img").count() == 0
    assert "two annotators" in page.text_content("#ref-source")
    bob = {"annotator": "bob", "client": "script-bob"}
    reply = httpx.post(fresh.url + "api/decide", json={"key": first, "decision": "in", **bob}, timeout=10)
    assert reply.status_code == 200
    _decide(page, "in")
    page.wait_for_function("() => document.querySelectorAll('#ref-images img').length === 1", timeout=5000)
    assert page.get_attribute("#ref-images img", "src") == f"/img/{first}"
    tab.close()


# --- the page at a desktop and a phone size, with realistic content ------------------------------
SHOW_CLASS, OTHER_CLASS = 291, 1
TITLES = [
    "Lioness resting in the shade, Masai Mara",
    "Male lion at dawn",
    "Zoo visit with the kids",
    "Serengeti 2019 - day 3",
    "Pride crossing the road",
    "Lion cub yawning",
    "IMG_4032",
    "Stone lion outside the library",
]
OWNERS = ["Jane Goodwin", "wildlife_pete", "Marta S.", "Kenji Watanabe", "safari-lens", "Ana Lucía Pérez"]
LICENCES = [
    ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"),
    ("CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/"),
    ("CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/"),
]


def _showcase_meta(class_id: int, j: int) -> dict:
    name, url = LICENCES[j % len(LICENCES)]
    return {
        "title": TITLES[j % len(TITLES)] if class_id == SHOW_CLASS else f"Goldfish bowl {j}",
        "tags": "lion, africa, wildlife, safari, kenya" if class_id == SHOW_CLASS else "goldfish, pet",
        "description": "Taken from the truck on our last morning in the reserve." if j % 3 == 0 else "",
        "owner_name": OWNERS[j % len(OWNERS)],
        "license": name,
        "license_url": url,
    }


@pytest.fixture(scope="module")
def showcase(tmp_path_factory):
    """A queue with titles, owners and licences as Flickr gives them, references, and overlap items."""
    from janus_build.demo.images import class_image

    root = tmp_path_factory.mktemp("tagshow")
    stage = make_stage(
        root / "fetch", {SHOW_CLASS: 40, OTHER_CLASS: 6}, shards=2, size=480, failed=0, meta=_showcase_meta
    )
    refs = root / "refs" / str(SHOW_CLASS)
    refs.mkdir(parents=True)
    for i in range(6):
        (refs / f"ref{i}.jpg").write_bytes(class_image(SHOW_CLASS, 500 + i, 160))
    server = Server(stage, _free_port(), "--references", str(root / "refs"), "--overlap", "0.3")
    server.start()
    yield server
    server.stop()


def _page(browser, server: Server, viewport: dict, annotator: str, touch: bool = False):
    context = browser.new_context(
        viewport=viewport, has_touch=touch, is_mobile=touch, device_scale_factor=2 if touch else 1
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(f"localStorage.setItem('janus-annotator', {json.dumps(annotator)})")
    page.add_init_script(f"localStorage.setItem('janus-class', '{SHOW_CLASS}')")
    page.goto(server.url)
    page.wait_for_selector("body[data-state=ready]")
    page.wait_for_function("() => document.querySelectorAll('#ref-images img').length === 6")
    return context, page, errors


def _settled(page) -> None:
    page.wait_for_function("() => !window.__janus.pending && window.__janus.buffer.length === 0")


def _strip(page) -> list[tuple[str, str]]:
    return page.evaluate("[...document.querySelectorAll('.recent')].map(c => [c.dataset.key, c.dataset.decision])")


def _server_recent(server: Server, annotator: str) -> list[tuple[str, str]]:
    params = {"annotator": annotator, "class_id": SHOW_CLASS, "n": 12}
    rows = httpx.get(server.url + "api/recent", params=params, timeout=10).json()["recent"]
    return [[r["key"], r["decision"]] for r in rows]


def _screenshot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("JANUS_TAG_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no button left in its hover state
    page.wait_for_function("() => [...document.images].every(i => !i.getAttribute('src') || i.complete)")
    page.screenshot(path=str(folder / f"tag-{name}.png"))


def test_desktop_page_keys_buttons_zoom_credit_and_a_consistent_strip(browser, showcase, tmp_path):
    context, page, errors = _page(browser, showcase, DESKTOP, "alice")
    assert page.is_visible("#keys .single-keys") and page.is_visible("#btn-in kbd")
    assert page.text_content("#question-class") == "lion"
    box = page.locator("#main-img").bounding_box()
    assert box["width"] > 800 and box["height"] > 500  # the image is the page
    credit = page.locator("#credit")
    assert credit.text_content().startswith(f"by {OWNERS[0]} · CC BY 2.0 · Flickr page")
    assert credit.locator("a").nth(0).get_attribute("href") == LICENCES[0][1]
    assert credit.locator("a").nth(1).get_attribute("href").startswith("https://www.flickr.com/photos/")

    # A held key auto-repeats: one decision, not one per repeat.
    first = _current(page)
    for _ in range(5):
        page.keyboard.down("i")
    page.keyboard.up("i")
    _settled(page)
    assert _current(page) != first
    assert [k for k, _ in _server_recent(showcase, "alice")] == [first]

    # The on-screen buttons decide too; z opens the full-resolution image, Escape closes it.
    clicked = _current(page)
    page.click("#btn-out")
    page.wait_for_function("k => document.body.dataset.currentKey !== k", arg=clicked)
    page.keyboard.press("z")
    page.wait_for_selector("#zoom:not([hidden])")
    size = page.evaluate(
        "(() => { const i = document.getElementById('zoom-img'); return [i.naturalWidth, i.getBoundingClientRect().width]; })()"
    )
    assert size == [480, 480]  # natural size, not scaled to the window
    page.keyboard.press("Escape")
    page.wait_for_selector("#zoom", state="hidden")
    for decision in ("in", "unsure", "in"):
        _decide(page, decision)

    # After an undo, a late reply to the strip's refresh must not overwrite a newer one.
    held, hold = [], {"on": False}

    def route(r):
        if hold["on"]:
            held.append((r, r.fetch()))
        else:
            r.continue_()

    page.route("**/api/recent*", route)
    hold["on"] = True
    undone = _current(page)
    page.keyboard.press("Backspace")
    page.wait_for_function("k => document.body.dataset.currentKey !== k", arg=undone)
    while not held:
        page.wait_for_timeout(20)
    hold["on"] = False
    replies = page.evaluate("window.__janus.recentReplies")
    again = _decide(page, "out")  # the undone image, decided again
    page.wait_for_function("n => window.__janus.recentReplies === n + 1", arg=replies)
    stale_route, stale = held[0]
    stale_route.fulfill(response=stale)
    page.wait_for_function("n => window.__janus.recentReplies === n + 2", arg=replies)
    assert _strip(page) == _server_recent(showcase, "alice") and _strip(page)[0] == [again, "out"]
    page.unroute("**/api/recent*")

    # remaining counts what is left for this annotator; judged overlap items are shown apart.
    progress = httpx.get(showcase.url + "api/progress", params={"class_id": SHOW_CLASS, "annotator": "alice"}).json()
    page.wait_for_function(
        "n => document.getElementById('progress').dataset.remaining === String(n)", arg=progress["remaining"]
    )
    assert progress["awaiting_second"] > 0 and "awaiting a 2nd annotator" in page.text_content("#progress")
    assert progress["done"] + progress["remaining"] + progress["awaiting_second"] == progress["items"]
    _settled(page)
    _screenshot(page, "desktop", tmp_path)
    assert errors == []
    context.close()


def _swipe(page, dx: int) -> None:
    """A one-finger horizontal swipe across the image (real touch events, through CDP)."""
    box = page.locator("#stage").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 6):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx * step / 5, "y": y}]})
    # The finger rests before it lifts: a fling would make Chrome swallow the next tap (a tap that
    # stops a fling is no click), which the next step of the test relies on.
    page.wait_for_timeout(150)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_phone_page_buttons_swipes_and_tap_to_zoom(browser, showcase, tmp_path):
    context, page, errors = _page(browser, showcase, PHONE, "bob", touch=True)
    img = page.locator("#main-img").bounding_box()
    assert img["x"] == 0 and img["width"] == PHONE["width"]  # the image fills the width
    assert not page.is_visible("#keys") and not page.is_visible("#btn-in kbd")  # no keyboard hints
    for button in ("#btn-out", "#btn-unsure", "#btn-in", "#btn-undo"):
        box = page.locator(button).bounding_box()
        assert box["height"] >= 56 and box["width"] >= 70, button  # thumb-sized
        assert box["y"] + box["height"] <= PHONE["height"]  # on screen without scrolling
    assert page.locator("#ref-images img").first.bounding_box()["y"] < img["y"]  # references above the image
    assert page.is_visible("#credit a")

    decided = []
    for action, decision in (("tap", "in"), ("swipe-left", "out"), ("swipe-right", "in"), ("tap-out", "out")):
        before = _current(page)
        if action == "tap":
            page.tap("#btn-in")
        elif action == "tap-out":
            page.tap("#btn-out")
        else:
            _swipe(page, -150 if action == "swipe-left" else 150)
        page.wait_for_function("k => document.body.dataset.currentKey !== k", arg=before)
        decided.append([before, decision])
    _settled(page)
    assert _server_recent(showcase, "bob") == decided[::-1]
    undone = decided[-1][0]
    page.tap("#btn-undo")
    page.wait_for_function("k => document.body.dataset.currentKey === k", arg=undone)

    page.tap("#main-img")  # a tap opens the full-resolution image; another closes it
    page.wait_for_selector("#zoom:not([hidden])")
    assert page.evaluate("document.getElementById('zoom-img').naturalWidth") == 480
    page.tap("#zoom")
    page.wait_for_selector("#zoom", state="hidden")
    page.wait_for_function(
        "() => window.__janus.recentReplies > 0 && document.querySelectorAll('.recent').length === 3"
    )
    _screenshot(page, "phone", tmp_path)
    assert errors == []
    context.close()
