// janus tag: keyboard-first tagging page, with buttons, swipes and taps on touch screens.
// Plain JS, no build step. Every text field from the data (titles, tags, descriptions, owners) is
// set with textContent, never inner HTML, so a Flickr title holding <script> shows as text; links
// from the data are used only when they are http(s).
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  config: null,
  classId: null,
  annotator: "",
  client: "",
  mode: "single",          // single | grid
  queue: [],               // leased, prefetched items not shown yet
  current: null,           // the item on screen (single mode)
  page: [],                // the grid page on screen
  marks: {},               // key -> "out" | "unsure" on the grid page
  cursor: 0,
  pending: false,          // a decision is being saved
  buffer: [],              // keys pressed while saving (replayed in order)
  refilling: null,
  exhausted: false,
  recent: [],
  recentSeq: 0,            // the latest /api/recent request sent; older replies are dropped
  recentReplies: 0,        // replies received (used or dropped), for tests
  zoomed: false,
  cache: new Map(),        // key -> Image (prefetched, decoded)
  latencies: [],           // keydown -> next item painted, ms
  lastProgress: 0,
  progressTimer: null,
};
window.__janus = S;

function newClientId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "c" + Math.random().toString(36).slice(2) + Date.now().toString(36);
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, opts);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = kind || "";
}

function who() { return { annotator: S.annotator, client: S.client }; }

function prefetch(item) {
  if (!item || !item.image || S.cache.has(item.key)) return;
  const img = new Image();
  img.decoding = "async";
  img.src = item.image;
  S.cache.set(item.key, img);
  if (img.decode) img.decode().catch(() => {});
  if (S.cache.size > 400) {           // forget the oldest entries
    const first = S.cache.keys().next().value;
    S.cache.delete(first);
  }
}

function target() { return S.mode === "grid" ? 2 * gridCount() : S.config.prefetch; }
function gridCount() { return S.config.grid_size * S.config.grid_size; }

function onScreen(key) {
  return (S.current && S.current.key === key) || S.page.some((i) => i.key === key) || S.queue.some((i) => i.key === key);
}

async function refill() {
  if (S.refilling) return S.refilling;
  if (S.queue.length >= target() || S.classId === null) return;
  const classId = S.classId;
  S.refilling = (async () => {
    try {
      const n = target() + (S.mode === "grid" ? S.page.length : 1);
      const data = await api("/api/next", { class_id: classId, n, ...who() });
      if (classId !== S.classId) return;
      let added = 0;
      for (const item of data.items) {
        if (!onScreen(item.key)) { S.queue.push(item); prefetch(item); added++; }
      }
      S.exhausted = data.items.length === 0 || (added === 0 && S.queue.length === 0);
    } catch (e) {
      setStatus("cannot reach the server: " + e.message, "error");
    } finally {
      S.refilling = null;
    }
  })();
  return S.refilling;
}

// --- single view ----------------------------------------------------------------------------
function show(item) {
  S.current = item || null;
  const img = $("main-img");
  document.body.dataset.currentKey = item ? item.key : "";
  $("empty").hidden = !!item;
  img.hidden = !item;
  $("title").textContent = item ? (item.title || "(no title)") : "";
  $("tags").textContent = item && item.tags ? "tags: " + item.tags : "";
  $("description").textContent = item && item.info && item.info.description ? item.info.description : "";
  $("item-key").textContent = item ? item.key + (item.overlap ? "  · agreement sample" : "") : "";
  renderCredit(item);
  if (item) {
    img.dataset.key = item.key;
    img.alt = item.title || item.key;
    if (item.image) img.src = item.image; else img.removeAttribute("src");
  }
}

function httpUrl(url) { return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null; }

function link(text, href) {
  const a = document.createElement("a");
  a.textContent = text;
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

// "by Owner · CC BY 2.0 (linked to its deed) · Flickr page": attribution and the source, when known.
function renderCredit(item) {
  const box = $("credit");
  box.replaceChildren();
  const c = (item && item.credit) || {};
  const parts = [];
  if (c.owner) parts.push(document.createTextNode("by " + c.owner));
  if (c.license) parts.push(httpUrl(c.license_url) ? link(c.license, c.license_url) : document.createTextNode(c.license));
  const page = httpUrl(c.page_url);
  if (page) parts.push(link(/flickr\.com\//i.test(page) ? "Flickr page ↗" : "source page ↗", page));
  parts.forEach((part, i) => { if (i) box.append(" · "); box.append(part); });
}

async function advance() {
  if (!S.queue.length) await refill();
  show(S.queue.shift());
  refill();
  document.body.dataset.state = S.current ? "ready" : "done";
  if (!S.current) showEmpty();
}

function markPainted(t0) {
  requestAnimationFrame(() => {
    S.latencies.push(performance.now() - t0);
    if (S.latencies.length > 5000) S.latencies.shift();
  });
}

async function decide(decision, t0) {
  if (!S.current) return;
  if (S.pending) { S.buffer.push({ kind: "decide", decision, t0 }); return; }
  const item = S.current;
  S.pending = true;
  try {
    await api("/api/decide", { key: item.key, decision, ...who() });
    pushRecent({ key: item.key, decision, image: item.image, title: item.title });
    loadRecent();
    setStatus("saved", "ok");
    closeZoom();
    await advance();
    markPainted(t0);
    refreshProgress();
  } catch (e) {
    S.buffer = [];
    setStatus("NOT saved (" + e.message + "): press the key again", "error");
  } finally {
    S.pending = false;
  }
  drain();
}

function drain() {
  if (S.pending || !S.buffer.length) return;
  const next = S.buffer.shift();
  if (next.kind === "decide") decide(next.decision, next.t0);
  else if (next.kind === "undo") undo();
}

async function undo() {
  if (S.pending) { S.buffer.push({ kind: "undo" }); return; }
  closeZoom();
  S.pending = true;
  try {
    const data = await api("/api/undo", who());
    if (!data.items.length) { setStatus("nothing to undo", ""); return; }
    for (const item of data.items) prefetch(item);
    const keys = new Set(data.items.map((i) => i.key));
    S.queue = S.queue.filter((i) => !keys.has(i.key));
    if (S.mode === "grid") {
      S.queue = S.page.filter((i) => !keys.has(i.key)).concat(S.queue);
      renderGrid(data.items);
    } else {
      if (S.current && !keys.has(S.current.key)) S.queue.unshift(S.current);
      show(data.items[0]);
      S.queue = data.items.slice(1).concat(S.queue);
      document.body.dataset.state = "ready";
    }
    setStatus(`undone (${data.items.length})`, "ok");
    loadRecent();
    refreshProgress(true);
  } catch (e) {
    setStatus("undo failed: " + e.message, "error");
  } finally {
    S.pending = false;
  }
  drain();
}

// --- grid view ------------------------------------------------------------------------------
async function nextPage() {
  const n = gridCount();
  if (S.queue.length < n) await refill();
  renderGrid(S.queue.splice(0, n));
  refill();
}

function renderGrid(items) {
  S.page = items;
  S.marks = {};
  S.cursor = 0;
  const grid = $("grid");
  grid.style.gridTemplateColumns = `repeat(${S.config.grid_size}, 1fr)`;
  grid.replaceChildren();
  items.forEach((item, index) => {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.key = item.key;
    const img = document.createElement("img");
    if (item.image) img.src = item.image;
    img.alt = item.title || item.key;
    const cap = document.createElement("div");
    cap.className = "cap";
    cap.textContent = item.title || item.key;
    cell.title = (item.title || "") + (item.tags ? "\n" + item.tags : "");
    cell.append(img, cap);
    cell.addEventListener("click", () => { S.cursor = index; toggle("out"); });
    grid.append(cell);
  });
  document.body.dataset.state = items.length ? "ready" : "done";
  document.body.dataset.pageKeys = items.map((i) => i.key).join(",");
  $("empty").hidden = !!items.length;
  if (!items.length) showEmpty();
  paintGrid();
}

function paintGrid() {
  [...$("grid").children].forEach((cell, index) => {
    const mark = S.marks[cell.dataset.key];
    cell.classList.toggle("out", mark === "out");
    cell.classList.toggle("unsure", mark === "unsure");
    cell.classList.toggle("cursor", index === S.cursor);
  });
}

function toggle(kind) {
  const item = S.page[S.cursor];
  if (!item) return;
  S.marks[item.key] = S.marks[item.key] === kind ? undefined : kind;
  paintGrid();
}

async function commitPage(t0) {
  if (!S.page.length || S.pending) return;
  S.pending = true;
  const decisions = S.page.map((i) => ({ key: i.key, decision: S.marks[i.key] || "in" }));
  try {
    await api("/api/decide_batch", { decisions, ...who() });
    S.page.forEach((i) => pushRecent({ key: i.key, decision: S.marks[i.key] || "in", image: i.image, title: i.title }));
    loadRecent();
    setStatus(`saved page (${decisions.length})`, "ok");
    await nextPage();
    markPainted(t0);
    refreshProgress(true);
  } catch (e) {
    setStatus("page NOT saved (" + e.message + "): press Enter again", "error");
  } finally {
    S.pending = false;
  }
}

function moveCursor(dx, dy) {
  const n = S.config.grid_size;
  const row = Math.floor(S.cursor / n) + dy, col = (S.cursor % n) + dx;
  const index = Math.min(Math.max(row, 0), n - 1) * n + Math.min(Math.max(col, 0), n - 1);
  if (index < S.page.length) S.cursor = index;
  paintGrid();
}

async function setMode(mode) {
  if (mode === S.mode || S.pending) return;
  if (mode === "grid") {
    if (S.current) S.queue.unshift(S.current);
    S.current = null;
    S.mode = "grid";
    closeZoom();
    $("single-view").hidden = true;
    $("grid-view").hidden = false;
    await nextPage();
  } else {
    S.queue = S.page.concat(S.queue);
    S.page = [];
    S.mode = "single";
    $("grid-view").hidden = true;
    $("single-view").hidden = false;
    await advance();
  }
  document.body.dataset.mode = S.mode;
  $("btn-commit").hidden = S.mode !== "grid";
  $("mode-toggle").textContent = S.mode === "grid" ? "single view (g)" : "grid mode (g)";
}

// --- recent decisions, progress, references ------------------------------------------------
function pushRecent(entry) {
  S.recent = [entry].concat(S.recent.filter((r) => r.key !== entry.key)).slice(0, 12);
  renderRecent();
}

// The server's order wins: after every decision, undo or edit the strip is fetched again, and only
// the reply to the latest request is shown (a slow reply to an earlier one must not overwrite it).
async function loadRecent() {
  const seq = ++S.recentSeq;
  try {
    const q = new URLSearchParams({ annotator: S.annotator, class_id: S.classId, n: "12" });
    const data = await api(`/api/recent?${q}`);
    S.recentReplies++;
    if (seq !== S.recentSeq) return;
    S.recent = data.recent;
    renderRecent();
  } catch (e) { S.recentReplies++; /* the strip is a convenience */ }
}

function renderRecent() {
  const box = $("recent");
  box.replaceChildren();
  for (const entry of S.recent) {
    const card = document.createElement("div");
    card.className = "recent";
    card.dataset.key = entry.key;
    card.dataset.decision = entry.decision;
    card.title = entry.title || entry.key;
    const img = document.createElement("img");
    if (entry.image) img.src = entry.image;
    img.alt = entry.title || entry.key;
    const choices = document.createElement("div");
    choices.className = "choices";
    for (const [decision, label] of [["in", "in"], ["out", "out"], ["unsure", "?"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.className = decision + (entry.decision === decision ? " on" : "");
      b.dataset.decision = decision;
      b.addEventListener("click", () => edit(entry, decision));
      choices.append(b);
    }
    card.append(img, choices);
    box.append(card);
  }
}

async function edit(entry, decision) {
  try {
    await api("/api/decide", { key: entry.key, decision, ...who() });
    entry.decision = decision;
    renderRecent();
    loadRecent();
    setStatus(`changed ${entry.key} to ${decision}`, "ok");
    refreshProgress(true);
  } catch (e) {
    setStatus("change NOT saved: " + e.message, "error");
  }
}

async function refreshProgress(force) {
  const now = Date.now();
  if (!force && now - S.lastProgress < 1000) {
    // Throttled: make sure one refresh follows the last decision of a burst.
    if (!S.progressTimer) S.progressTimer = setTimeout(() => { S.progressTimer = null; refreshProgress(true); }, 1000);
    return;
  }
  S.lastProgress = now;
  try {
    const q = new URLSearchParams({ class_id: S.classId, annotator: S.annotator });
    const p = await api(`/api/progress?${q}`);
    const rate = p.in_rate === null ? "–" : Math.round(100 * p.in_rate) + "%";
    const dpm = p.decisions_per_minute === null ? "–" : Math.round(p.decisions_per_minute);
    const box = $("progress");
    box.textContent = `${p.done}/${p.items} done · ${p.remaining} left for you · ${rate} in · ${dpm}/min`;
    if (p.awaiting_second) {
      const waiting = document.createElement("span");
      waiting.className = "awaiting";
      waiting.textContent = ` · ${p.awaiting_second} awaiting a 2nd annotator`;
      waiting.title = "overlap images you judged: another annotator must judge them too (agreement sample)";
      box.append(waiting);
    }
    box.title = box.textContent;
    box.dataset.done = p.done;
    box.dataset.remaining = p.remaining;
    box.dataset.awaitingSecond = p.awaiting_second;
    S.awaitingSecond = p.awaiting_second;
    if (document.body.dataset.state === "done") showEmpty();
    // Without --references the strip shows images two annotators confirmed: pick them up as they come.
    if (S.refSource !== "references" && $("ref-images").children.length < S.config.references_per_class) loadReferences();
  } catch (e) { /* shown by the next failing action */ }
}

async function loadReferences() {
  try {
    const data = await api(`/api/references?class_id=${encodeURIComponent(S.classId)}`);
    S.refSource = data.source;
    const box = $("ref-images");
    const shown = [...box.children].map((img) => img.getAttribute("src")).join(" ");
    if (shown !== data.images.join(" ")) {
      box.replaceChildren();
      for (const src of data.images) {
        const img = document.createElement("img");
        img.src = src;
        img.alt = "reference photo";
        box.append(img);
      }
    }
    $("ref-source").textContent = data.source === "references"
      ? "from --references"
      : (data.images.length
        ? "confirmed in-class by two annotators"
        : "No reference photos yet: start the server with --references DIR, or they appear here once two annotators agree an image is in-class.");
  } catch (e) { /* optional */ }
}

function showEmpty() {
  const waiting = S.awaitingSecond || 0;
  $("empty").textContent = waiting
    ? `Nothing left for you in this class. ${waiting} image(s) you judged wait for a second annotator.`
    : "Nothing left to tag in this class.";
}

async function selectClass(classId) {
  if (S.pending) return;
  if (S.classId !== null && S.classId !== classId) {
    // Give the old class's images back so other tabs can take them (this class's stay ours).
    try { await api("/api/release", { class_id: S.classId, ...who() }); } catch (e) { /* they expire */ }
  }
  S.classId = classId;
  localStorage.setItem("janus-class", String(classId));
  $("class-select").value = String(classId);
  const info = S.config.classes.find((c) => c.class_id === classId);
  $("class-name").textContent = info ? `${classId} ${info.name}` : String(classId);
  $("question-class").textContent = info && info.name ? info.name : `class ${classId}`;
  $("ref-images").replaceChildren();
  S.refSource = null;
  S.queue = []; S.page = []; S.current = null; S.exhausted = false;
  if (S.mode === "grid") await nextPage(); else await advance();
  loadRecent();
  loadReferences();
  refreshProgress(true);
}

function stepClass(delta) {
  const ids = S.config.classes.map((c) => c.class_id);
  const i = ids.indexOf(S.classId);
  const next = ids[Math.min(Math.max(i + delta, 0), ids.length - 1)];
  if (next !== S.classId) selectClass(next);
}

// --- keys -------------------------------------------------------------------------------------
const SINGLE_KEYS = { i: "in", 1: "in", o: "out", 2: "out", u: "unsure", 3: "unsure" };

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

function onKey(event) {
  const tag = (event.target && event.target.tagName) || "";
  if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  // A held key auto-repeats: only arrows may repeat, or a held "i" would decide images never seen.
  if (event.repeat && !ARROWS[key]) { event.preventDefault(); return; }
  const t0 = event.timeStamp || performance.now();
  if (S.zoomed && (key === "Escape" || key === "z" || key === " ")) { event.preventDefault(); closeZoom(); return; }
  if (key === "Backspace") { event.preventDefault(); undo(); return; }
  if (key === "z" && S.mode === "single") { openZoom(); return; }
  if (key === "g") { setMode(S.mode === "grid" ? "single" : "grid"); return; }
  if (key === "[") { stepClass(-1); return; }
  if (key === "]") { stepClass(1); return; }
  if (S.mode === "single") {
    const decision = SINGLE_KEYS[key];
    if (decision) { event.preventDefault(); decide(decision, t0); }
    return;
  }
  if (ARROWS[key]) { event.preventDefault(); moveCursor(...ARROWS[key]); }
  else if (key === "x" || key === " ") { event.preventDefault(); toggle("out"); }
  else if (key === "u") { toggle("unsure"); }
  else if (key === "Enter") { event.preventDefault(); commitPage(t0); }
}

// --- zoom: the image at full resolution -------------------------------------------------------
function openZoom() {
  if (!S.current || !S.current.image) return;
  $("zoom-img").src = S.current.image;
  $("zoom").hidden = false;
  S.zoomed = true;
  document.body.dataset.zoom = "open";
}

function closeZoom() {
  if (!S.zoomed) return;
  $("zoom").hidden = true;
  S.zoomed = false;
  document.body.dataset.zoom = "";
}

// --- touch and mouse: swipe right = in, left = out; a tap or click opens the full size ---------
const SWIPE_PX = 60;

function setupStage() {
  const stage = $("stage");
  const img = $("main-img");
  const hint = $("swipe-hint");
  let start = null;
  let dragged = false;     // the click that ends a drag or swipe is no tap
  const reset = () => { start = null; img.style.transform = ""; hint.className = ""; };
  stage.addEventListener("pointerdown", (e) => {
    dragged = false;
    if (e.button !== 0 || !S.current) return;
    start = { x: e.clientX, y: e.clientY, t0: e.timeStamp };
  });
  stage.addEventListener("pointermove", (e) => {
    if (!start) return;
    const dx = e.clientX - start.x;
    img.style.transform = `translateX(${dx}px) rotate(${dx / 40}deg)`;
    hint.className = Math.abs(dx) < SWIPE_PX ? "" : (dx > 0 ? "in" : "out");
  });
  stage.addEventListener("pointerup", (e) => {
    if (!start) return;
    const dx = e.clientX - start.x, dy = e.clientY - start.y, t0 = start.t0;
    reset();
    dragged = Math.abs(dx) >= 10 || Math.abs(dy) >= 10;
    if (Math.abs(dx) >= SWIPE_PX && Math.abs(dx) > 1.5 * Math.abs(dy)) decide(dx > 0 ? "in" : "out", t0);
  });
  stage.addEventListener("pointercancel", reset);
  // A tap or click opens the full size: on "click", so that the tap's own click cannot close it again.
  stage.addEventListener("click", () => { if (!dragged) openZoom(); dragged = false; });
  $("zoom").addEventListener("click", closeZoom);
}

function setupButtons() {
  for (const id of ["btn-in", "btn-out", "btn-unsure"]) {
    const button = $(id);
    button.addEventListener("click", (e) => { button.blur(); decide(button.dataset.decision, e.timeStamp); });
  }
  $("btn-undo").addEventListener("click", () => { $("btn-undo").blur(); undo(); });
  $("btn-zoom").addEventListener("click", () => { $("btn-zoom").blur(); openZoom(); });
  $("btn-commit").addEventListener("click", (e) => { $("btn-commit").blur(); commitPage(e.timeStamp); });
}

async function main() {
  // A reload keeps the tab's id (and so the images leased to it); any other navigation gets a new
  // one, because a duplicated tab (or one opened from this page) inherits sessionStorage and two
  // tabs sharing an id would be handed the same images.
  const nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  const kept = nav && nav.type === "reload" ? sessionStorage.getItem("janus-client") : null;
  S.client = kept || newClientId();
  sessionStorage.setItem("janus-client", S.client);
  S.config = await api("/api/config");
  S.annotator = localStorage.getItem("janus-annotator") || S.config.annotator;
  const name = $("annotator");
  name.value = S.annotator;
  name.addEventListener("change", () => {
    const value = name.value.trim();
    if (!value) { name.value = S.annotator; return; }
    S.annotator = value;
    localStorage.setItem("janus-annotator", value);
    selectClass(S.classId);
  });
  const select = $("class-select");
  for (const c of S.config.classes) {
    const option = document.createElement("option");
    option.value = String(c.class_id);
    option.textContent = c.name ? `${c.class_id} ${c.name}` : String(c.class_id);
    select.append(option);
  }
  select.addEventListener("change", () => { selectClass(Number(select.value)); select.blur(); });
  $("mode-toggle").addEventListener("click", (e) => { e.target.blur(); setMode(S.mode === "grid" ? "single" : "grid"); });
  document.addEventListener("keydown", onKey);
  setupStage();
  setupButtons();
  if (S.config.mode === "audit") document.title = "janus tag: audit";
  const saved = Number(localStorage.getItem("janus-class"));
  const ids = S.config.classes.map((c) => c.class_id);
  if (!ids.length) { setStatus("the queue is empty", "error"); return; }
  await selectClass(ids.includes(saved) ? saved : ids[0]);
}

main().catch((e) => setStatus("failed to start: " + e.message, "error"));
