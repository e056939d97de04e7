// jlabel's labeling panel (anywidget front end). Plain ES module, no dependencies.
// The frame stays in Python: this holds the current record and a small window, asked for by message.
// Every piece of record data is put on the page with textContent, never as HTML.

const WINDOW = 6; // records held ahead of the current one
const KEEP = 50; // records kept in the cache on either side of the current one
// where a suggestion came from (the llm_source column)
const SOURCE_NAMES = {
  "zero-shot": "model",
  head: "learned from your labels",
  combined: "model + your labels",
  cascade: "learned from your labels (model skipped)",
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Python counts offsets in code points, the DOM in UTF-16 units.
function u16ToCp(text, u16) {
  return Array.from(text.slice(0, u16)).length;
}
function cpToU16(text, cp) {
  return Array.from(text).slice(0, cp).join("").length;
}

function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function initialize() {}

function render({ model, el: host }) {
  const root = el("div", "jlabel-labeler");
  root.tabIndex = 0;
  root.setAttribute("role", "application");
  root.setAttribute("aria-label", "jlabel labeling panel");
  root.dataset.lmSuppressShortcuts = "true"; // Lumino: no app shortcuts from inside the panel

  const head = el("div", "jlabel-head");
  const progress = el("span", "jlabel-progress");
  const who = el("span", "jlabel-annotator");
  const bar = el("div", "jlabel-progressbar");
  const barFill = el("div", "jlabel-progressbar-fill");
  bar.append(barFill);
  head.append(progress, who);
  const instructions = el("div", "jlabel-instructions");
  const notice = el("div", "jlabel-message");
  const body = el("div", "jlabel-record");
  const keyLine = el("div", "jlabel-key");
  const text = el("div", "jlabel-text");
  const context = el("dl", "jlabel-context");
  const current = el("div", "jlabel-current");
  body.append(keyLine, context, text, current);
  const suggestion = el("div", "jlabel-suggestion");
  const filter = el("input", "jlabel-filter");
  filter.type = "search";
  filter.placeholder = "filter labels ( / )";
  const buttons = el("div", "jlabel-labels");
  const actions = el("div", "jlabel-actions");
  const hints = el("div", "jlabel-hints");
  const empty = el("div", "jlabel-empty");
  root.append(head, bar, instructions, notice, empty, body, suggestion, filter, buttons, actions, hints);
  host.append(root);

  const cache = new Map(); // queue position -> record
  const waiting = new Set(); // request ids of decisions in flight
  const queued = []; // keys pressed while a decision was in flight or the record loading, as functions
  const requested = new Set(); // positions asked for and not yet answered
  const fetches = new Map(); // request id of a fetch -> [start, end) of the positions it asked for
  let fetchError = ""; // why the last fetch failed; no new fetch until something changes
  let nextId = 1;
  const viewId = Math.random().toString(36).slice(2, 10);
  let shownKey = null;
  let shownAt = performance.now();
  let chosen = []; // multi: toggled labels; spans: the spans being edited
  let touched = false; // the user changed chosen on the shown record: a late suggestion leaves it alone
  let active = 0; // spans: index of the active label
  let rejected = false;
  let localError = "";

  const labels = () => model.get("labels");
  const kind = () => model.get("kind");
  let pos = model.get("position"); // the kernel's position, or the one a decision's answer brings first
  const position = () => pos;
  const total = () => model.get("total");
  const record = () => cache.get(position());

  function send(message) {
    const id = `${viewId}-${nextId++}`; // every view of the widget hears every reply: ids say whose it is
    model.send({ ...message, id });
    return id;
  }

  function fetchWindow(from) {
    if (fetchError) return;
    const end = Math.min(total(), from + WINDOW);
    let start = from;
    while (start < end && (cache.has(start) || requested.has(start))) start++;
    if (start >= end) return;
    for (let p = start; p < end; p++) requested.add(p);
    fetches.set(send({ type: "fetch", start, count: end - start }), [start, end]);
  }

  function onMessage(message) {
    if (message.type === "records") {
      for (const r of message.records) {
        cache.set(r.position, r);
        requested.delete(r.position);
      }
      if (cache.size > 4 * KEEP) {
        // hold a window around the current record, not every record visited
        for (const p of cache.keys()) if (Math.abs(p - position()) > KEEP) cache.delete(p);
      }
      if (message.id && waiting.delete(message.id)) localError = "";
      fetches.delete(message.id);
      fetchError = ""; // the kernel answers again: records still missing are asked for anew
      if (message.position !== undefined) pos = message.position;
      show();
      runQueued();
    } else if (message.type === "error" && fetches.has(message.id)) {
      // a window that could not be loaded: ask again once something changes; keys pressed stay queued
      const [start, end] = fetches.get(message.id);
      fetches.delete(message.id);
      for (let p = start; p < end; p++) requested.delete(p);
      fetchError = message.error;
      show();
      runQueued();
    } else if (message.type === "error" && message.id && !String(message.id).startsWith(`${viewId}-`)) {
      return; // another view's refused request
    } else if (message.type === "error") {
      waiting.delete(message.id);
      localError = message.error;
      queued.length = 0; // what was pressed after a refused decision was meant for another record
      show();
    }
  }

  function startRecord(r) {
    shownKey = r ? r.key : null;
    shownAt = performance.now();
    rejected = false;
    active = 0;
    touched = false;
    chosen = r ? initialChoice(r) : [];
  }

  // multi and spans start from the record's label, else from its suggestion
  function initialChoice(r) {
    const suggested = r.suggestion ? r.suggestion.label : null;
    if (kind() === "multi") return [...(r.label || suggested || [])];
    if (kind() === "spans") return (r.label || suggested || []).map((s) => ({ ...s }));
    return [];
  }

  function show() {
    const n = total();
    const p = position();
    // a decision is in flight and its answer brings the next record: keep this one on screen until then
    if (waiting.size && p < n && !cache.has(p)) return;
    const done = model.get("done");
    progress.textContent = `${done} / ${n} labeled · record ${Math.min(p + 1, n)} of ${n} · queue: ${model.get("queue_name")}`;
    who.textContent = `annotator: ${model.get("annotator")}`;
    barFill.style.width = n ? `${(100 * done) / n}%` : "0%";
    instructions.textContent = model.get("_instructions");
    const message = localError || (fetchError && `Could not load records: ${fetchError}`) || model.get("message");
    notice.textContent = message;
    notice.hidden = !message;
    root.dataset.position = String(p);
    root.dataset.busy = waiting.size ? "true" : "false";

    const finished = n === 0 || p >= n;
    empty.hidden = !finished;
    for (const part of [body, suggestion, filter, buttons, actions]) part.hidden = finished;
    if (finished) {
      root.dataset.key = "";
      shownKey = null;
      empty.textContent =
        n === 0
          ? model.get("message") || "Nothing to label: the queue is empty."
          : `End of the queue: ${done} of ${n} records labeled. Press ← to go back, z to undo.`;
      hints.textContent = n === 0 ? "" : "← previous · z undo";
      return;
    }
    const r = record();
    fetchWindow(p);
    if (!r) {
      root.dataset.key = "";
      keyLine.textContent = fetchError ? "could not load this record (← → to move, z to undo)" : "loading…";
      text.textContent = "";
      return;
    }
    if (r.key !== shownKey) startRecord(r);
    else if (!touched) chosen = initialChoice(r); // a suggestion that came while the record was on screen
    root.dataset.key = r.key;
    keyLine.textContent = `record ${r.key}`;
    showContext(r);
    showText(r);
    showCurrent(r);
    showSuggestion(r);
    showButtons(r);
    hints.textContent =
      kind() === "single"
        ? "1-9 label · Enter accept · x reject · s skip · z undo · ← → move · / filter"
        : kind() === "multi"
          ? "1-9 toggle · Enter confirm · s skip · z undo · ← → move · / filter"
          : "1-9 active label · select text to add · click a span to remove · Enter confirm · s skip · z undo";
  }

  function showContext(r) {
    context.replaceChildren();
    for (const [name, value] of Object.entries(r.context || {})) {
      context.append(el("dt", "", name), el("dd", "", value));
    }
    context.hidden = !Object.keys(r.context || {}).length;
  }

  function showText(r) {
    text.replaceChildren();
    if (kind() !== "spans") {
      text.textContent = r.text;
      return;
    }
    const spans = [...chosen].sort((a, b) => a.start - b.start);
    let at = 0; // code points
    const full = r.text;
    for (const s of spans) {
      if (s.start < at) continue; // overlapping spans are shown once
      text.append(document.createTextNode(full.slice(cpToU16(full, at), cpToU16(full, s.start))));
      const mark = el("mark", "jlabel-span", full.slice(cpToU16(full, s.start), cpToU16(full, s.end)));
      mark.dataset.label = s.label;
      mark.dataset.start = String(s.start);
      mark.dataset.end = String(s.end);
      mark.title = `${s.label} (click to remove)`;
      mark.style.setProperty("--jlabel-hue", String((labels().indexOf(s.label) * 67) % 360));
      text.append(mark);
      at = s.end;
    }
    text.append(document.createTextNode(full.slice(cpToU16(full, at))));
  }

  function showCurrent(r) {
    if (r.label === null || r.label === undefined) {
      current.textContent = "not labeled yet";
    } else {
      const value = kind() === "single" ? r.label : JSON.stringify(r.label);
      current.textContent = `labeled: ${value} (${r.label_source || "human"})`;
    }
  }

  function showSuggestion(r) {
    suggestion.replaceChildren();
    suggestion.dataset.state = r.suggestion_state;
    if (r.suggestion_state === "coming") {
      suggestion.append(el("span", "jlabel-coming", "suggestion coming…"));
      return;
    }
    if (r.suggestion_state === "hidden") {
      suggestion.append(el("span", "", "suggestion hidden (blind check): choose a label yourself"));
      return;
    }
    if (r.suggestion_state === "error") {
      suggestion.append(el("span", "jlabel-error", `no suggestion: the model failed (${r.error})`));
      return;
    }
    if (!r.suggestion) {
      suggestion.append(el("span", "", "no suggestion"));
      return;
    }
    const s = r.suggestion;
    const value = kind() === "single" ? s.label : kind() === "multi" ? s.label.join(", ") || "(none)" : `${s.label.length} span(s)`;
    const line = el("div", "jlabel-suggested");
    line.append(el("span", rejected ? "jlabel-rejected" : "jlabel-suggested-label", `suggestion: ${value}`));
    if (s.confidence !== null) {
      const meter = el("span", "jlabel-confidence");
      const fill = el("span", "jlabel-confidence-fill");
      fill.style.width = `${Math.round(100 * s.confidence)}%`;
      meter.append(fill);
      line.append(meter, el("span", "jlabel-confidence-text", `${Math.round(100 * s.confidence)}%`));
    }
    if (s.source) line.append(el("span", "jlabel-source", (Object.hasOwn(SOURCE_NAMES, s.source) ? SOURCE_NAMES[s.source] : s.source)));
    if (s.model) line.title = `model ${s.model}`;
    suggestion.append(line);
    if (rejected) suggestion.append(el("div", "jlabel-error", "rejected: choose the right label"));
    if (s.probs) {
      const table = el("div", "jlabel-probs");
      labels().forEach((name, i) => {
        const row = el("div", "jlabel-prob");
        const meter = el("span", "jlabel-prob-bar");
        const fill = el("span", "jlabel-prob-fill");
        fill.style.width = `${Math.round(100 * s.probs[i])}%`;
        meter.append(fill);
        row.append(el("span", "jlabel-prob-name", name), meter, el("span", "", `${(100 * s.probs[i]).toFixed(1)}%`));
        table.append(row);
      });
      suggestion.append(table);
    }
  }

  function showButtons(r) {
    buttons.replaceChildren();
    const needle = filter.value.trim().toLowerCase();
    filter.hidden = labels().length <= 9;
    labels().forEach((name, i) => {
      if (needle && !name.toLowerCase().includes(needle)) return;
      const button = el("button", "jlabel-label");
      button.type = "button";
      button.dataset.label = name;
      if (i < 9) button.append(el("kbd", "", String(i + 1)));
      button.append(document.createTextNode(` ${name}`));
      const on =
        kind() === "single" ? r.label === name : kind() === "multi" ? chosen.includes(name) : i === active;
      button.classList.toggle("jlabel-on", on);
      if (r.suggestion && kind() === "single" && r.suggestion.label === name) button.classList.add("jlabel-is-suggested");
      const descriptions = model.get("_descriptions");
      const description = Object.hasOwn(descriptions, name) ? descriptions[name] : "";
      if (description) button.title = description;
      buttons.append(button);
    });
    actions.replaceChildren();
    const add = (label, action) => {
      const button = el("button", "jlabel-action", label);
      button.type = "button";
      button.dataset.action = action;
      actions.append(button);
    };
    if (kind() !== "single") add("confirm ⏎", "confirm");
    else if (r.suggestion) add("accept ⏎", "accept");
    if (kind() === "single" && r.suggestion) add("reject x", "reject");
    add("skip s", "skip");
    add("undo z", "undo");
    add("←", "prev");
    add("→", "next");
  }

  // -- actions ---------------------------------------------------------------

  // Keys act on the record shown when their turn comes. Pressed while a decision is in flight
  // (or the record is loading), they wait, in order: none is lost, and each one reads the record,
  // its suggestion and its selection when it runs, not when it was pressed.
  function ready() {
    if (waiting.size) return false;
    const p = position();
    // a record that could not be loaded lets the keys run (a move, an undo) rather than block them
    return p >= total() || cache.has(p) || (fetchError !== "" && !requested.has(p));
  }

  function later(intent) {
    if (!queued.length && ready()) intent();
    else {
      queued.push(intent);
      runQueued();
    }
  }

  function runQueued() {
    while (queued.length && ready()) {
      show(); // the record whose turn it is, with its selection
      queued.shift()();
    }
  }

  function sendDecision(message) {
    waiting.add(send(message));
    root.dataset.busy = "true";
  }

  function decide(action, value) {
    if (!record()) return; // nothing shown to decide on
    const message = { type: "decide", position: position(), action, duration_ms: Math.round(performance.now() - shownAt) };
    if (value !== undefined) message.value = value;
    // the suggestion on screen (null: none, hidden or still coming): Python journals against what was seen
    message.shown = record().suggestion ? record().suggestion.label : null;
    sendDecision(message);
  }

  function choose(index) {
    const r = record();
    const name = labels()[index];
    if (!r || name === undefined) return;
    if (kind() === "single") {
      decide(rejected ? "reject" : "label", name);
    } else if (kind() === "multi") {
      chosen = chosen.includes(name) ? chosen.filter((x) => x !== name) : [...chosen, name];
      touched = true;
      show();
    } else {
      active = index;
      show();
    }
  }

  function confirm() {
    const r = record();
    if (!r) return;
    if (kind() === "single") {
      if (r.suggestion && !rejected) decide("accept");
      else {
        localError = r.suggestion ? "Choose the right label (1-9)." : "No suggestion to accept: choose a label (1-9).";
        show();
      }
    } else if (kind() === "multi") {
      decide("confirm", labels().filter((x) => chosen.includes(x)));
    } else {
      decide("confirm", chosen.map((s) => ({ start: s.start, end: s.end, label: s.label })));
    }
  }

  function reject() {
    if (kind() !== "single" || !record()?.suggestion) return;
    rejected = true;
    show();
  }

  function move(step) {
    const p = Math.max(0, Math.min(total(), position() + step));
    if (p === position()) return;
    localError = "";
    fetchError = ""; // another record: try loading again
    pos = p;
    model.set("position", p);
    model.save_changes();
    show();
  }

  function undo() {
    sendDecision({ type: "undo" });
  }

  function act(action) {
    if (action === "accept" || action === "confirm") confirm();
    else if (action === "reject") reject();
    else if (action === "skip") decide("skip");
    else if (action === "undo") undo();
    else if (action === "prev") move(-1);
    else if (action === "next") move(1);
  }

  function onKeydown(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === filter) {
      event.stopPropagation();
      if (event.key === "Enter") {
        const first = filter.value.trim() ? buttons.querySelector(".jlabel-label") : null; // empty: choose nothing
        if (first) {
          const index = labels().indexOf(first.dataset.label);
          later(() => choose(index));
        }
        filter.value = "";
        root.focus();
        show();
        event.preventDefault();
      } else if (event.key === "Escape") {
        filter.value = "";
        root.focus();
        show();
      }
      return;
    }
    const key = event.key;
    if (key === "Tab") return;
    if (key === "Escape") {
      if (root.contains(document.activeElement)) document.activeElement.blur(); // the panel or one of its buttons
      return;
    }
    // the panel owns every plain key while focused: none reaches JupyterLab's command mode
    event.stopPropagation();
    // Enter or Space on a button reached with Tab presses that button (its click), not the panel's Enter
    if ((key === "Enter" || key === " ") && event.target instanceof Element && event.target.closest("button")) return;
    event.preventDefault();
    if (event.repeat && key !== "ArrowLeft" && key !== "ArrowRight") return;
    if (/^[1-9]$/.test(key)) later(() => choose(Number(key) - 1));
    else if (key === "Enter") later(confirm);
    else if (key === "z" || key === "Backspace") later(undo);
    else if (key === "s") later(() => decide("skip"));
    else if (key === "x") later(reject);
    else if (key === "ArrowLeft") later(() => move(-1));
    else if (key === "ArrowRight") later(() => move(1));
    else if (key === "/") filter.focus();
  }

  function onKeyup(event) {
    if (!(event.ctrlKey || event.metaKey || event.altKey) && event.key !== "Tab") event.stopPropagation();
  }

  function onClick(event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    // the second click of a double click would land on the next record, one nobody has seen yet
    if (event.detail > 1 && target.closest(".jlabel-label, .jlabel-action")) return;
    const labelButton = target.closest(".jlabel-label");
    const actionButton = target.closest(".jlabel-action");
    const mark = target.closest(".jlabel-span");
    if (labelButton) {
      const index = labels().indexOf(labelButton.dataset.label);
      later(() => choose(index));
    } else if (actionButton) {
      const action = actionButton.dataset.action;
      later(() => act(action));
    } else if (mark && window.getSelection().isCollapsed && ready()) {
      const start = Number(mark.dataset.start);
      const end = Number(mark.dataset.end);
      chosen = chosen.filter((s) => !(s.start === start && s.end === end && s.label === mark.dataset.label));
      touched = true;
      show();
    }
    if (target !== filter) root.focus({ preventScroll: true });
  }

  // a character offset (code points) of a DOM boundary inside the text
  function offsetOf(node, offset) {
    const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
    let units = 0;
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      if (t === node) return units + offset;
      units += t.data.length;
    }
    if (node === text) {
      // a boundary between children
      let sum = 0;
      for (let i = 0; i < offset; i++) sum += text.childNodes[i].textContent.length;
      return sum;
    }
    return null;
  }

  function onMouseup() {
    if (kind() !== "spans") return;
    const r = record();
    const selection = window.getSelection();
    if (!r || !ready() || !selection.rangeCount || selection.isCollapsed) return; // not on a record leaving the screen
    const range = selection.getRangeAt(0);
    if (!text.contains(range.startContainer) || !text.contains(range.endContainer)) return;
    const a = offsetOf(range.startContainer, range.startOffset);
    const b = offsetOf(range.endContainer, range.endOffset);
    if (a === null || b === null) return;
    let start = u16ToCp(r.text, Math.min(a, b));
    let end = u16ToCp(r.text, Math.max(a, b));
    const chars = Array.from(r.text);
    while (start < end && /\s/.test(chars[start])) start++; // selections often catch a space
    while (end > start && /\s/.test(chars[end - 1])) end--;
    selection.removeAllRanges();
    if (start >= end) return;
    if (chosen.some((s) => s.start < end && start < s.end)) {
      localError = "Spans may not overlap: click the existing span to remove it first.";
    } else {
      chosen = [...chosen, { start, end, label: labels()[active] }];
      touched = true;
      localError = "";
    }
    show();
    root.focus({ preventScroll: true });
  }

  const onChange = () => {
    fetchError = ""; // something changed: a record that failed to load is asked for again
    show();
    runQueued();
  };
  const onPosition = () => {
    pos = model.get("position");
    fetchError = "";
    show();
    runQueued();
  };
  const onFilter = () => show();
  model.on("msg:custom", onMessage);
  model.on("change:position", onPosition);
  for (const name of ["total", "done", "message", "labels", "annotator", "queue_name"]) {
    model.on(`change:${name}`, onChange);
  }
  root.addEventListener("keydown", onKeydown);
  root.addEventListener("keyup", onKeyup);
  root.addEventListener("click", onClick);
  text.addEventListener("mouseup", onMouseup);
  filter.addEventListener("input", onFilter);
  show();

  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:position", onPosition);
    for (const name of ["total", "done", "message", "labels", "annotator", "queue_name"]) {
      model.off(`change:${name}`, onChange);
    }
    root.removeEventListener("keydown", onKeydown);
    root.removeEventListener("keyup", onKeyup);
    root.removeEventListener("click", onClick);
    text.removeEventListener("mouseup", onMouseup);
    filter.removeEventListener("input", onFilter);
    root.remove();
  };
}

export default { initialize, render };
