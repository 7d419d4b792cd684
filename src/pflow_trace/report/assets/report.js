// pflow-trace report: draws the embedded summary and timeline. Every value from the trace is
// shown with textContent or canvas fillText, never parsed as markup. No network, no storage.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("pflow-report-data").textContent);
  const CLASSES = DATA.item_classes;
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue("--" + name).trim();
  const ITEM_COLOURS = CLASSES.map(colour);
  const NODE_COLOURS = {
    success: colour("node"), degraded: colour("degraded"),
    failed: colour("failed"), unfinished: colour("unfinished"),
  };
  const LABEL_W = 190, AXIS_H = 26, NODE_H = 22, LANE_H = 12, PAD = 3;
  // Failed, retried and interrupted items are drawn at least MARK_MIN_W px wide and after (above)
  // every other item: one 0.5 ms failure among 10 s successes stays visible at any zoom.
  const MARK_MIN_W = 4;
  const EMPHASISED = CLASSES.map((name) => name === "failed" || name === "retried" || name === "interrupted");
  // Colouring by LLM cost or tokens: successes take a step of RAMP (light: least, dark: most,
  // linear from 0 to the run's largest); an item with no value (no call, a price unknown) is
  // grey; failed, retried and interrupted items keep their status colour, drawn above.
  const RAMP = ["#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b", "#041c42"];
  const NO_VALUE = CLASSES.length; // drawing key of an item with no value in the measure
  const KEY_COLOURS = ITEM_COLOURS.concat([colour("skipped")], RAMP);
  const MEASURES = { cost: "cost_usd", tokens: "tokens" };
  let colourBy = "status";
  const byId = (id) => document.getElementById(id);
  let current = 0; // the run shown
  let state = null; // per-run drawing state, built by prepare()

  // -- small helpers ---------------------------------------------------------------------
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function ms(value) { // the same rules as show's format_duration_ms
    if (value === null || value === undefined) return "-";
    if (value < 10) return value.toFixed(2) + " ms";
    if (value < 1000) return value.toFixed(1) + " ms";
    if (value < 60000) return (value / 1000).toFixed(2) + " s";
    const minutes = Math.floor(value / 60000);
    return minutes + "m " + ((value - minutes * 60000) / 1000).toFixed(1).padStart(4, "0") + "s";
  }
  const pct = (v) => (v === null || v === undefined ? "-" : (v * 100).toFixed(1) + "%");
  const num = (v, digits) => (v === null || v === undefined ? "-" : v.toFixed(digits));
  const orDash = (v) => (v === null || v === undefined || v === "" ? "-" : String(v));
  function addFact(dl, key, value, href) {
    dl.appendChild(el("dt", key));
    const dd = el("dd");
    if (href) {
      const link = el("a", value);
      link.href = href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      dd.appendChild(link);
    } else {
      dd.textContent = orDash(value);
    }
    dl.appendChild(dd);
  }
  function jaegerLink(traceId, spanId) {
    if (!DATA.jaeger_url || !traceId) return null;
    let url = DATA.jaeger_url + "/trace/" + encodeURIComponent(traceId);
    if (spanId) url += "?uiFind=" + encodeURIComponent(spanId);
    return url;
  }

  // -- header ----------------------------------------------------------------------------
  function renderHeader(run, timeline) {
    byId("workflow-name").textContent = run.workflow_name || "(unnamed)";
    document.title = "pflow-trace report: " + (run.workflow_name || "(unnamed)");
    const status = run.final_status || "unknown";
    const badge = byId("run-status");
    badge.textContent = status;
    badge.className = "badge " + (NODE_COLOURS[status] || status === "interrupted" ? status : "unknown");
    const facts = byId("run-facts");
    facts.replaceChildren();
    let items = 0, errors = 0;
    for (const node of run.nodes) {
      if (node.batch) { items += node.batch.count || 0; errors += node.batch.error_count || 0; }
    }
    addFact(facts, "started", run.start_time);
    addFact(facts, "duration", ms(run.duration_ms));
    addFact(facts, "nodes", run.nodes_run + " run, " + run.nodes_failed + " failed");
    addFact(facts, "items", items + " in batches, " + errors + " failed");
    if (run.llm) addFact(facts, "LLM", llmFact(run.llm.totals));
    addFact(facts, "trace id", run.trace_id, jaegerLink(run.trace_id, null));
    addFact(facts, "execution", run.execution_id);
    addFact(facts, "file", run.source + " (" + run.format + " " + orDash(run.format_version) + ")");
    if (run.error) addFact(facts, "error", run.error);
    const notes = byId("run-notes");
    notes.replaceChildren();
    for (const warning of run.warnings) notes.appendChild(el("li", "warning: " + warning));
    for (const node of timeline.nodes) {
      if (node.items && node.items.unplaced) {
        notes.appendChild(el("li", node.node_id + ": " + node.items.unplaced +
          " item(s) have no recorded start or duration and are not drawn"));
      }
      if (node.start_estimated && node.start_ms !== null) {
        notes.appendChild(el("li", node.node_id + ": start derived from its end time (not recorded)"));
      }
    }
  }

  function llmFact(totals) {
    // One rule for cached input (docs/llm.md): input_tokens already includes it.
    const cost = totals.cost_usd === null ? "price unknown" : "$" + totals.cost_usd.toFixed(4);
    return totals.calls + " calls, " + totals.total_tokens + " tokens (" + totals.input_tokens +
      " in, " + totals.output_tokens + " out), " + cost;
  }

  // -- waterfall: layout -----------------------------------------------------------------
  function prepare(timeline) {
    const rows = [];
    let y = AXIS_H, endMs = timeline.duration_ms || 0;
    for (const node of timeline.nodes) {
      rows.push({ kind: "node", node: node, y: y, h: NODE_H });
      y += NODE_H;
      if (node.start_ms !== null && node.duration_ms !== null) {
        endMs = Math.max(endMs, node.start_ms + node.duration_ms);
      }
      const items = node.items;
      if (!items) continue;
      const n = items.status.length;
      const start = new Float64Array(n), end = new Float64Array(n);
      const byStatus = CLASSES.map(() => []);
      const byLane = Array.from({ length: items.lanes }, () => []);
      const marked = Array.from({ length: items.lanes }, () => []);
      for (let i = 0; i < n; i++) {
        const o = items.offset_ms[i], d = items.duration_ms[i];
        if (o === null || d === null || node.start_ms === null) { start[i] = NaN; continue; }
        start[i] = node.start_ms + o; end[i] = start[i] + d;
        if (end[i] > endMs) endMs = end[i];
        byStatus[items.status[i]].push(i);
        byLane[items.lane[i]].push(i);
        if (EMPHASISED[items.status[i]]) marked[items.lane[i]].push(i);
      }
      for (const lane of byLane) lane.sort((a, b) => start[a] - start[b]);
      for (const lane of marked) lane.sort((a, b) => start[a] - start[b]);
      node.draw = {
        start: start, end: end, laneY: y,
        byStatus: byStatus.map((list) => Int32Array.from(list)),
        byLane: byLane.map((list) => Int32Array.from(list)),
        marked: marked.map((list) => Int32Array.from(list)),
      };
      for (let lane = 0; lane < items.lanes; lane++) {
        const label = items.lane_labels.length ? items.lane_labels[lane] : "lane " + lane;
        rows.push({ kind: "lane", node: node, lane: lane, label: label, y: y, h: LANE_H });
        y += LANE_H;
      }
    }
    return { timeline: timeline, rows: rows, height: y + PAD, endMs: endMs || 1,
      t0: 0, t1: (endMs || 1) * 1.02, selected: null, measureMax: measureMaxima(timeline) };
  }

  function measureMaxima(timeline) {
    // The largest value of each measure over the run's items; null when no item has one.
    const maxima = {};
    for (const name in MEASURES) {
      let top = null;
      for (const node of timeline.nodes) {
        const values = node.items ? node.items[MEASURES[name]] : null;
        if (!values) continue;
        for (const v of values) if (v !== null && (top === null || v > top)) top = v;
      }
      maxima[name] = top;
    }
    return maxima;
  }

  function measureOf(items) { // the chosen measure's column, or null when colouring by status
    return colourBy === "status" ? null : (items[MEASURES[colourBy]] || []);
  }

  function rampKey(values, i) {
    const v = values.length ? values[i] : null;
    if (v === null || v === undefined) return NO_VALUE;
    const top = state.measureMax[colourBy];
    const step = top > 0 ? Math.min(RAMP.length - 1, Math.floor((v / top) * RAMP.length)) : 0;
    return NO_VALUE + 1 + step;
  }

  // -- waterfall: drawing ----------------------------------------------------------------
  const canvas = byId("waterfall");
  const ctx = canvas.getContext("2d");
  let widthCss = 0;

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    widthCss = canvas.parentElement.clientWidth;
    canvas.style.height = state.height + "px";
    canvas.width = Math.round(widthCss * ratio);
    canvas.height = Math.round(state.height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }
  const plotW = () => Math.max(widthCss - LABEL_W - 8, 10);
  const xOf = (t) => LABEL_W + ((t - state.t0) / (state.t1 - state.t0)) * plotW();
  const tOf = (x) => state.t0 + ((x - LABEL_W) / plotW()) * (state.t1 - state.t0);

  function niceStep(span, target) {
    const raw = span / target, power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function draw() {
    const drawn = CLASSES.map(() => 0);
    ctx.clearRect(0, 0, widthCss, state.height);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    drawAxis();
    ctx.save();
    ctx.beginPath();
    ctx.rect(LABEL_W, AXIS_H, plotW(), state.height - AXIS_H);
    ctx.clip();
    for (const row of state.rows) {
      if (row.kind === "node") drawNodeBar(row);
      else drawLaneTrack(row);
    }
    for (const node of state.timeline.nodes) if (node.draw) drawItems(node, drawn);
    ctx.restore();
    drawLabels();
    CLASSES.forEach((name, at) => { canvas.dataset["drawn" + name[0].toUpperCase() + name.slice(1)] = drawn[at]; });
    canvas.dataset.drawnTotal = drawn.reduce((a, b) => a + b, 0);
    canvas.dataset.view = state.t0.toFixed(3) + "," + state.t1.toFixed(3);
  }

  function drawAxis() {
    const step = niceStep(state.t1 - state.t0, Math.max(plotW() / 110, 2));
    ctx.fillStyle = colour("dim");
    ctx.strokeStyle = colour("grid");
    ctx.lineWidth = 1;
    for (let t = Math.ceil(state.t0 / step) * step; t <= state.t1; t += step) {
      const x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, AXIS_H - 6); ctx.lineTo(x, state.height); ctx.stroke();
      ctx.fillText(ms(t), x + 3, AXIS_H / 2 - 2);
    }
  }

  function drawNodeBar(row) {
    const node = row.node;
    if (node.start_ms === null || node.duration_ms === null) return;
    const x0 = xOf(node.start_ms), x1 = xOf(node.start_ms + node.duration_ms);
    ctx.fillStyle = NODE_COLOURS[node.status] || NODE_COLOURS.success;
    ctx.globalAlpha = node.items ? 0.45 : 1;
    ctx.fillRect(x0, row.y + 4, Math.max(x1 - x0, 1), row.h - 8);
    ctx.globalAlpha = 1;
    if (state.selected && state.selected.node === node && state.selected.item === null) outline(x0, row.y + 4, x1 - x0, row.h - 8);
  }

  function drawLaneTrack(row) {
    const node = row.node;
    if (node.start_ms === null || node.duration_ms === null) return;
    const x0 = xOf(node.start_ms), x1 = xOf(node.start_ms + node.duration_ms);
    ctx.fillStyle = colour("track"); // the empty track is idle time: no item on this lane
    ctx.fillRect(x0, row.y + 1, Math.max(x1 - x0, 1), row.h - 2);
  }

  function drawItems(node, drawn) {
    const scale = plotW() / (state.t1 - state.t0);
    drawItemLanes(node, node.draw.byLane, false, drawn, scale); // successes and skipped items
    drawItemLanes(node, node.draw.marked, true, drawn, scale); // then, above them, the rest
    drawRetryMarks(node, scale);
    const sel = state.selected;
    if (sel && sel.node === node && sel.item !== null) {
      const box = itemBoxOf(node, sel.item);
      if (box) outline(box.x, box.y, box.w, box.h);
    }
  }

  function drawItemLanes(node, lanes, emphasised, drawn, scale) {
    // Lane by lane in time order; sub-pixel neighbours of one status that touch at this zoom
    // become one rectangle, so 100,000 items cost a few thousand fillRect calls zoomed out.
    // An emphasised rectangle narrower than MARK_MIN_W is widened about its middle, on whole
    // pixels so its colour is not blended away.
    const d = node.draw, items = node.items, t0 = state.t0, x1max = LABEL_W + plotW();
    const margin = emphasised ? MARK_MIN_W : 0; // a widened mark may reach into view
    const values = emphasised ? null : measureOf(items); // marks keep their status colour
    let runStatus = -1, runX0 = 0, runX1 = 0, runY = 0; // the rectangle being grown
    const flush = () => {
      if (runStatus < 0) return;
      ctx.fillStyle = KEY_COLOURS[runStatus];
      const w = runX1 - runX0;
      if (emphasised && w < MARK_MIN_W) {
        ctx.fillRect(Math.round((runX0 + runX1 - MARK_MIN_W) / 2), runY, MARK_MIN_W, LANE_H - 2);
      } else {
        ctx.fillRect(runX0, runY, w > 2 ? w - 0.5 : Math.max(w, 1), LANE_H - 2);
      }
      runStatus = -1;
    };
    for (let lane = 0; lane < lanes.length; lane++) {
      const list = lanes[lane], y = d.laneY + lane * LANE_H + 1;
      for (let k = 0; k < list.length; k++) {
        const i = list[k];
        const status = items.status[i];
        if (EMPHASISED[status] !== emphasised) continue;
        const x0 = LABEL_W + (d.start[i] - t0) * scale, x1 = LABEL_W + (d.end[i] - t0) * scale;
        if (x1 < LABEL_W - margin || x0 > x1max + margin) continue;
        drawn[status]++;
        const key = values === null ? status : rampKey(values, i);
        if (key === runStatus && x1 - x0 < 1.5 && x0 - runX1 < 0.5) { // sub-pixel items only
          if (x1 > runX1) runX1 = x1;
          continue;
        }
        flush();
        runStatus = key; runX0 = x0; runX1 = x1; runY = y;
      }
      flush();
    }
  }

  function drawRetryMarks(node, scale) {
    // A retried item is drawn as one segment per attempt: a gap where each failed attempt ended.
    const d = node.draw, marks = node.items.retry_ms;
    ctx.fillStyle = "#ffffff";
    for (const key in marks) {
      const i = Number(key);
      if (isNaN(d.start[i]) || (d.end[i] - d.start[i]) * scale < 4) continue;
      for (const offset of marks[key]) {
        const x = LABEL_W + (d.start[i] + offset - state.t0) * scale;
        ctx.fillRect(x - 1, d.laneY + node.items.lane[i] * LANE_H + 1, 2, LANE_H - 2);
      }
    }
  }

  function outline(x, y, w, h) {
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 2;
    ctx.strokeRect(x - 1, y - 1, Math.max(w, 1) + 2, h + 2);
  }

  function drawLabels() {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, LABEL_W, state.height);
    for (const row of state.rows) {
      if (row.kind === "node") {
        ctx.fillStyle = colour("text");
        ctx.font = "600 12px system-ui, sans-serif";
        ctx.fillText(clip(row.node.order + ". " + nodeLabel(row.node), LABEL_W - 10), 6, row.y + row.h / 2);
      } else if (row.h >= 10) {
        ctx.fillStyle = colour("dim");
        ctx.font = "10px system-ui, sans-serif";
        ctx.fillText(clip(row.label, LABEL_W - 24), 18, row.y + row.h / 2);
      }
    }
  }

  function clip(text, width) {
    text = text.replace(/[\u0000-\u001f\u007f]/g, "\u00b7");
    if (ctx.measureText(text).width <= width) return text;
    while (text.length > 1 && ctx.measureText(text + "\u2026").width > width) text = text.slice(0, -1);
    return text + "\u2026";
  }

  // -- waterfall: hit testing and details --------------------------------------------------
  function itemBoxOf(node, i) {
    const d = node.draw;
    if (!d || isNaN(d.start[i])) return null;
    const x0 = xOf(d.start[i]), x1 = xOf(d.end[i]), y = d.laneY + node.items.lane[i] * LANE_H + 1;
    if (EMPHASISED[node.items.status[i]] && x1 - x0 < MARK_MIN_W) { // as drawItemLanes widens it
      return { x: Math.round((x0 + x1 - MARK_MIN_W) / 2), y: y, w: MARK_MIN_W, h: LANE_H - 2 };
    }
    return { x: x0, y: y, w: Math.max(x1 - x0, 1), h: LANE_H - 2 };
  }

  function hit(x, y) {
    if (x < LABEL_W) return null;
    const row = state.rows.find((r) => y >= r.y && y < r.y + r.h);
    if (!row) return null;
    if (row.kind === "node") {
      const n = row.node;
      if (n.start_ms === null || n.duration_ms === null) return null;
      const x0 = xOf(n.start_ms), x1 = xOf(n.start_ms + n.duration_ms);
      return x >= x0 - 2 && x <= Math.max(x1, x0 + 1) + 2 ? { node: n, item: null } : null;
    }
    const d = row.node.draw, lane = d.byLane[row.lane], t = tOf(x);
    const tolerance = (3 / plotW()) * (state.t1 - state.t0);
    let lo = 0, hi = lane.length - 1, found = -1;
    while (lo <= hi) { // the last item starting at or before t + tolerance
      const mid = (lo + hi) >> 1;
      if (d.start[lane[mid]] <= t + tolerance) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    // A widened mark is as wide to the pointer as on screen, and wins a tie with a neighbour.
    const halfMark = (MARK_MIN_W / 2 / plotW()) * (state.t1 - state.t0), status = row.node.items.status;
    let best = null, bestDistance = Infinity, bestMarked = false;
    for (let k = found; k >= 0 && k > found - 64; k--) {
      const i = lane[k];
      let distance = t < d.start[i] ? d.start[i] - t : t > d.end[i] ? t - d.end[i] : 0;
      const marked = EMPHASISED[status[i]];
      if (marked) distance = Math.max(distance - halfMark, 0);
      if (distance <= tolerance && (distance < bestDistance || (distance === bestDistance && marked && !bestMarked))) {
        best = i; bestDistance = distance; bestMarked = marked;
      }
      if (d.end[i] < t - tolerance && distance > tolerance) break;
    }
    return best === null ? null : { node: row.node, item: best };
  }

  function describe(target) {
    const node = target.node, items = node.items, i = target.item, run = currentRun();
    const fields = [];
    if (i === null) {
      fields.push(["node", node.order + ". " + node.node_id + " (" + node.node_type + ")"],
        ["status", node.status], ["start", ms(node.start_ms)], ["duration", ms(node.duration_ms)],
        ["span id", node.span_id]);
      const summary = run.nodes[node.order - 1]; // the same node in show's summary
      for (const ref of (summary && summary.files) || []) {
        fields.push(["file (" + ref.param + ")", ref.path + " sha256 " + ref.sha256]);
      }
      return { title: "Node " + node.node_id, fields: fields, span: node.span_id, trace: run.trace_id };
    }
    const error = items.error[i] >= 0 ? items.errors[items.error[i]] : null;
    fields.push(["node", node.node_id], ["index", items.index[i]], ["item", items.preview[i]],
      ["status", CLASSES[items.status[i]]], ["attempts", items.attempts[i]],
      ["start", ms(node.draw.start[i])], ["duration", ms(items.duration_ms[i])],
      [items.lane_labels.length ? "worker" : "lane",
        items.lane_labels.length ? items.lane_labels[items.lane[i]] : items.lane[i]]);
    if (items.key.length) fields.splice(3, 0, ["key", items.key[i]]); // after the item: batch.key
    const marks = items.retry_ms[String(i)];
    if (marks) fields.push(["retries at", marks.map(ms).join(", ") + " after the item started"]);
    const split = items.time_us.length ? items.time_us[i] : null;
    if (split) {
      fields.push(["time split", "lane wait " + ms(split[0] / 1000) + ", attempts " + ms(split[1] / 1000) +
        ", retry waits " + ms(split[2] / 1000) + ", overhead " + ms(split[3] / 1000)]);
    }
    const provider = items.provider_us.length ? items.provider_us[i] : null;
    if (provider !== null) fields.push(["provider", ms(provider / 1000) + " (inside attempts)"]);
    if (items.tokens.length && items.tokens[i] !== null) {
      fields.push(["tokens", items.tokens[i]], ["cost", usd(items.cost_usd[i])]);
    }
    fields.push(["error", error], ["span id", items.span_id[i]]);
    return { title: "Item " + orDash(items.index[i]) + " of " + node.node_id, fields: fields,
      span: items.span_id[i], trace: run.trace_id };
  }

  function showDetails(target) {
    state.selected = target;
    const dl = byId("details-fields");
    dl.replaceChildren();
    byId("details-empty").hidden = target !== null;
    if (target === null) { byId("details-title").textContent = "Details"; draw(); return; }
    const info = describe(target);
    byId("details-title").textContent = info.title;
    for (const [key, value] of info.fields) addFact(dl, key, value);
    const link = jaegerLink(info.trace, info.span);
    if (link && info.span) addFact(dl, "Jaeger", "open this span in Jaeger", link);
    dl.dataset.index = target.item === null ? "" : String(target.node.items.index[target.item]);
    draw();
  }

  function showTooltip(target, x, y) {
    const tip = byId("tooltip");
    if (!target) { tip.hidden = true; return; }
    const info = describe(target);
    tip.textContent = info.title + "\n" + info.fields
      .filter(([key]) => key !== "node" && key !== "span id")
      .map(([key, value]) => key + ": " + orDash(value)).join("\n");
    tip.hidden = false;
    tip.style.left = Math.min(x + 14, widthCss - 300) + "px";
    tip.style.top = (y + 14) + "px";
  }

  // -- waterfall: zoom and pan -------------------------------------------------------------
  function setView(t0, t1) {
    const span = Math.max(t1 - t0, 0.001);
    state.t0 = t0; state.t1 = t0 + span;
    draw();
  }
  function zoom(factor, atX) {
    const anchor = atX === undefined ? (state.t0 + state.t1) / 2 : tOf(atX);
    setView(anchor - (anchor - state.t0) * factor, anchor + (state.t1 - anchor) * factor);
  }
  function fit() { setView(0, state.endMs * 1.02); }

  let drag = null;
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoom(event.deltaY > 0 ? 1.25 : 0.8, event.offsetX);
  }, { passive: false });
  canvas.addEventListener("mousedown", (event) => {
    drag = { x: event.offsetX, t0: state.t0, t1: state.t1, moved: false };
  });
  window.addEventListener("mouseup", () => {
    if (drag && drag.moved) canvas.classList.remove("dragging");
    setTimeout(() => { drag = null; }, 0);
  });
  canvas.addEventListener("mousemove", (event) => {
    if (drag && event.buttons === 1) {
      const dx = event.offsetX - drag.x;
      if (Math.abs(dx) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
      if (drag.moved) {
        const dt = (dx / plotW()) * (drag.t1 - drag.t0);
        setView(drag.t0 - dt, drag.t1 - dt);
        showTooltip(null);
        return;
      }
    }
    showTooltip(hit(event.offsetX, event.offsetY), event.offsetX, event.offsetY);
  });
  canvas.addEventListener("mouseleave", () => showTooltip(null));
  canvas.addEventListener("click", (event) => {
    if (drag && drag.moved) return;
    showDetails(hit(event.offsetX, event.offsetY));
  });
  byId("zoom-in").addEventListener("click", () => zoom(0.5));
  byId("zoom-out").addEventListener("click", () => zoom(2));
  byId("zoom-fit").addEventListener("click", fit);
  byId("colour-by").addEventListener("change", (event) => setColourBy(event.target.value));
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
    if (event.key === "+" || event.key === "=") zoom(0.5);
    else if (event.key === "-") zoom(2);
    else if (event.key === "0") fit();
  });
  window.addEventListener("resize", () => { resize(); draw(); });

  function usd(value) { return value === null || value === undefined ? "price unknown" : "$" + value.toFixed(6); }

  function renderLegend() {
    const legend = byId("legend");
    legend.replaceChildren();
    if (colourBy !== "status") renderRampLegend(legend);
    CLASSES.forEach((name, at) => {
      if (colourBy !== "status" && !EMPHASISED[at]) return; // successes are on the ramp
      let count = 0;
      for (const node of state.timeline.nodes) if (node.draw) count += node.draw.byStatus[at].length;
      const li = el("li");
      const swatch = el("span", null, "swatch");
      swatch.style.background = ITEM_COLOURS[at];
      li.append(swatch, el("span", name + " " + count));
      li.dataset.status = name;
      legend.appendChild(li);
    });
  }

  function renderRampLegend(legend) {
    // The ramp from the least to the most, then the items with no value in the measure.
    const top = state.measureMax[colourBy], fmt = colourBy === "cost" ? usd : String;
    const li = el("li");
    li.dataset.measure = colourBy;
    li.append(el("span", (colourBy === "cost" ? "LLM cost" : "tokens") + " " + fmt(0)));
    for (const shade of RAMP) {
      const swatch = el("span", null, "swatch ramp");
      swatch.style.background = shade;
      li.append(swatch);
    }
    li.append(el("span", fmt(top)));
    legend.appendChild(li);
    let none = 0;
    for (const node of state.timeline.nodes) {
      if (!node.items) continue;
      const values = node.items[MEASURES[colourBy]] || [];
      for (let i = 0; i < node.items.status.length; i++) {
        if (!EMPHASISED[node.items.status[i]] && (!values.length || values[i] === null)) none++;
      }
    }
    const rest = el("li");
    const swatch = el("span", null, "swatch");
    swatch.style.background = KEY_COLOURS[NO_VALUE];
    rest.append(swatch, el("span", (colourBy === "cost" ? "no cost " : "no tokens ") + none));
    rest.dataset.status = "none";
    legend.appendChild(rest);
  }

  function setColourBy(name) {
    // Status, or an LLM measure the run has; anything else falls back to status.
    colourBy = name in MEASURES && state.measureMax[name] !== null ? name : "status";
    byId("colour-by").value = colourBy;
    renderLegend();
    draw();
  }

  // -- tables ------------------------------------------------------------------------------
  function sortable(table, columns, rows) {
    // columns: [label, numeric]; rows: [[value, text, cls]...]. Click a header to sort.
    const head = table.tHead, body = table.tBodies[0];
    head.replaceChildren();
    const tr = el("tr");
    let order = { at: -1, dir: 1 };
    const fill = () => {
      body.replaceChildren();
      for (const row of rows) {
        const line = el("tr");
        row.forEach(([, text, cls], at) => line.appendChild(el("td", text, (columns[at][1] ? "num " : "cell-text ") + (cls || ""))));
        body.appendChild(line);
      }
    };
    columns.forEach(([label, numeric], at) => {
      const th = el("th", label, numeric ? "num" : "");
      th.addEventListener("click", () => {
        order = { at: at, dir: order.at === at ? -order.dir : (numeric ? -1 : 1) };
        rows.sort((a, b) => compare(a[at][0], b[at][0]) * order.dir);
        for (const cell of tr.children) cell.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", order.dir > 0 ? "ascending" : "descending");
        fill();
      });
      tr.appendChild(th);
    });
    head.appendChild(tr);
    fill();
  }
  function compare(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    return a < b ? -1 : 1;
  }
  const cell = (value, text, cls) => [value, text === undefined ? orDash(value) : text, cls];
  // A sub-workflow's node, indented under the step that called it.
  const nodeLabel = (node) => {
    const depth = (node.call_path || []).length;
    return depth ? "\u00a0".repeat(2 * depth) + "\u2514 " + node.node_id : node.node_id;
  };

  function renderNodeTable(run) {
    const columns = [["#", 1], ["node", 0], ["type", 0], ["status", 0], ["duration", 1], ["share", 1],
      ["items", 1], ["failed", 1], ["p50", 1], ["p95", 1], ["max", 1], ["parallelism", 1],
      ["efficiency", 1], ["retries", 1]];
    const rows = run.nodes.map((node) => {
      const b = node.batch || {}, t = b.timing || {};
      return [cell(node.order), cell(node.node_id, nodeLabel(node)), cell(node.node_type),
        cell(node.status, node.status, "status-" + node.status), cell(node.duration_ms, ms(node.duration_ms)),
        cell(node.share, pct(node.share)), cell(b.count ?? null), cell(b.error_count ?? null),
        cell(t.p50_item_ms ?? null, ms(t.p50_item_ms)), cell(t.p95_item_ms ?? null, ms(t.p95_item_ms)),
        cell(t.max_item_ms ?? null, ms(t.max_item_ms)),
        cell(b.effective_parallelism ?? null, b.effective_parallelism == null ? "-" : num(b.effective_parallelism, 2) + "x"),
        cell(b.efficiency ?? null, pct(b.efficiency)), cell(b.retries_used ?? null)];
    });
    sortable(byId("node-table"), columns, rows);
    const holder = byId("batch-details");
    holder.replaceChildren();
    for (const node of run.nodes) if (node.batch) holder.appendChild(batchBlock(node));
  }

  function batchBlock(node) {
    const b = node.batch;
    const block = el("details", null, "batch");
    block.open = true;
    block.appendChild(el("summary", "batch " + node.node_id + ": " + b.count + " items, " +
      orDash(b.error_count) + " failed, " + (b.execution_mode || "mode unknown") +
      (b.max_concurrent ? ", max_concurrent " + b.max_concurrent : "")));
    const t = b.time_split;
    if (t) {
      const share = (v) => ms(v) + (t.wall_ms > 0 ? " (" + pct(v / t.wall_ms) + ")" : "");
      block.appendChild(el("p", "where the time went: lane wait " + share(t.lane_wait_ms) +
        ", attempts " + share(t.attempts_ms) + ", retry waits " + share(t.retry_wait_ms) +
        ", overhead " + share(t.overhead_ms) +
        (t.provider_ms !== null ? "; provider " + ms(t.provider_ms) + " inside attempts" : ""),
        "time-split"));
    }
    if (b.slowest.length) {
      block.appendChild(el("h3", "slowest " + b.slowest.length));
      const table = el("table", null, "sortable");
      table.append(el("thead"), el("tbody"));
      sortable(table, [["index", 1], ["item", 0], ["duration", 1], ["status", 0], ["attempts", 1], ["lane", 1]],
        b.slowest.map((s) => [cell(s.index), cell(s.item), cell(s.duration_ms, ms(s.duration_ms)),
          cell(s.status), cell(s.attempts), cell(s.worker)]));
      block.appendChild(table);
    }
    if (b.errors.length) {
      block.appendChild(el("h3", "errors"));
      const table = el("table", null, "sortable");
      table.append(el("thead"), el("tbody"));
      sortable(table, [["count", 1], ["message", 0], ["first index", 1]],
        b.errors.map((g) => [cell(g.count), cell(g.message), cell(g.first_index)]));
      block.appendChild(table);
      if (b.errors_more) block.appendChild(el("p", "+" + b.errors_more + " more error messages", "dim"));
    }
    for (const sentence of b.unknown) block.appendChild(el("p", "unknown: " + sentence, "dim"));
    return block;
  }

  // -- comparison: the diff model of the newest run against the one before it ---------------
  // Every verdict is the diff's (report/diff_build.py): a change is drawn as slower, faster,
  // costlier... only when the diff called it; the script decides nothing of its own.
  const METRIC_LABELS = {
    wall_ms: "wall", p50_ms: "item p50", p95_ms: "item p95", p99_ms: "item p99",
    error_rate: "errors", retry_rate: "retries", tokens_per_call: "tokens/call", cost_usd: "cost",
  };
  function signed(value, text) { return (value > 0 ? "+" : value < 0 ? "\u2212" : "") + text; }
  function metricChange(m) {
    if (m.change === null) return "-";
    let text;
    if (m.metric.endsWith("_ms")) text = signed(m.change, ms(Math.abs(m.change)));
    else if (m.metric.endsWith("_rate")) text = signed(m.change, (Math.abs(m.change) * 100).toFixed(1) + " pts");
    else if (m.metric === "cost_usd") text = signed(m.change, "$" + Math.abs(m.change).toFixed(4));
    else text = signed(m.change, Math.abs(m.change).toFixed(1));
    if (m.change_relative !== null) text += " (" + signed(m.change_relative, pct(Math.abs(m.change_relative))) + ")";
    return text;
  }
  function metricFigure(m, value) {
    if (value === null) return "-";
    if (m.metric.endsWith("_ms")) return ms(value);
    if (m.metric.endsWith("_rate")) return pct(value);
    if (m.metric === "cost_usd") return "$" + value.toFixed(4);
    return value.toFixed(1);
  }
  function metricDetail(m) {
    const test = m.p_value === null ? "untested" : m.test + " p=" + m.p_value.toPrecision(2) +
      (m.significant ? ", significant" : ", not significant");
    return METRIC_LABELS[m.metric] + ": " + metricFigure(m, m.base) + " \u2192 " +
      metricFigure(m, m.new) + " " + metricChange(m) + "; " + test + "; " + m.verdict;
  }
  function changeCell(node) {
    // [sort value, text, class]; the cell lists the diff's called changes, else "no change".
    const called = node.metrics.filter((m) => m.verdict !== "no change" && m.verdict !== "untested");
    if (node.presence !== "both") return [null, node.presence, "change-none"];
    const failing = node.newly_failing_count ? ", " + node.newly_failing_count + " newly failing" : "";
    if (!called.length) return [0, "no change" + failing, failing ? "change-slower" : "change-none"];
    const text = called.map((m) => METRIC_LABELS[m.metric] + " " + m.verdict + " " + metricChange(m)).join("; ");
    const worse = called.some((m) => m.regression) || failing;
    return [called.length, text + failing, worse ? "change-slower" : "change-faster"];
  }
  function nodeInRun(at, nodeId) {
    const found = DATA.summary.runs[at].nodes.filter((n) => n.node_id === nodeId);
    if (!found.length) return null;
    const duration = found.some((n) => n.duration_ms === null) ? null :
      found.reduce((sum, n) => sum + n.duration_ms, 0);
    const batches = found.filter((n) => n.batch);
    const items = batches.length ? batches.reduce((sum, n) => sum + (n.batch.count || 0), 0) : null;
    return { duration: duration, items: items };
  }
  function runCell(at, nodeId) {
    const seen = nodeInRun(at, nodeId);
    if (!seen) return cell(null, "not run");
    const text = ms(seen.duration) + (seen.items === null ? "" : " \u00b7 " + seen.items + " items");
    return cell(seen.duration, text);
  }
  function comparisonTable(comparison) {
    const runs = DATA.summary.runs, diff = comparison.diff;
    const clock = (at) => (runs[at].start_time ? " \u00b7 " + runs[at].start_time.slice(11, 19) : "");
    const label = (at, position) => "run " + (at + 1) + (position === 0 ? " (newest)" : "") + clock(at);
    const columns = [["node", 0]].concat(comparison.runs.map((at, position) => [label(at, position), 1]),
      [["newest against run " + (comparison.base_run + 1), 0]]);
    const rows = diff.nodes.map((node) => {
      const change = changeCell(node);
      return [cell(node.node_id)].concat(comparison.runs.map((at) => runCell(at, node.node_id)), [change]);
    });
    rows.unshift([cell("(whole run)")].concat(comparison.runs.map((at) =>
      cell(runs[at].duration_ms, ms(runs[at].duration_ms) + " \u00b7 " + orDash(runs[at].final_status))),
    [cell(null, "")]));
    const table = el("table", null, "sortable comparison");
    table.append(el("thead"), el("tbody"));
    sortable(table, columns, rows);
    // Each node's change cell explains itself: every figure, its test and the verdict.
    const nodesById = {};
    for (const node of diff.nodes) nodesById[node.node_id] = node;
    for (const line of table.tBodies[0].rows) {
      const node = nodesById[line.cells[0].textContent];
      if (node && line.cells[0].textContent !== "(whole run)") {
        line.lastElementChild.title = node.metrics.map(metricDetail).join("\n");
      }
    }
    return table;
  }

  // -- history chart: one small SVG per node and figure, oldest run on the left --------------
  const SVG_NS = "http://www.w3.org/2000/svg";
  const CHART_W = 180, CHART_H = 44, CHART_PAD = 5;
  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }
  function chart(name, values, format, startedAt, runLabel) {
    const known = values.filter((v) => v !== null);
    const box = svg("svg", { width: CHART_W, height: CHART_H, viewBox: "0 0 " + CHART_W + " " + CHART_H,
      role: "img", class: "history-chart" });
    box.dataset.metric = name;
    box.dataset.points = String(known.length);
    box.appendChild(svg("title", {})).textContent = name + ": " + values.map(format).join(", ");
    const low = Math.min(...known), high = Math.max(...known), span = high - low;
    const x = (at) => CHART_PAD + (values.length > 1 ? at * (CHART_W - 2 * CHART_PAD) / (values.length - 1) : 0);
    const y = (v) => CHART_H - CHART_PAD - (span > 0 ? (v - low) / span : 0.5) * (CHART_H - 2 * CHART_PAD);
    const points = values.map((v, at) => (v === null ? null : [x(at), y(v)])).filter((p) => p);
    if (points.length > 1) {
      box.appendChild(svg("polyline", { points: points.map((p) => p.join(",")).join(" "),
        fill: "none", stroke: colour("node"), "stroke-width": 1.5 }));
    }
    values.forEach((v, at) => {
      if (v === null) return;
      const started = at === startedAt;
      const dot = svg("circle", { cx: x(at), cy: y(v), r: started ? 4 : 2.5, class: "point" + (started ? " change-start" : ""),
        fill: started ? colour("failed") : colour("node") });
      dot.appendChild(svg("title", {})).textContent = runLabel(at) + ": " + format(v);
      box.appendChild(dot);
    });
    return box;
  }
  function historyBlock(comparison) {
    const history = comparison.history;
    const block = el("details", null, "history");
    block.open = true;
    block.appendChild(el("summary", "history: " + history.runs.length + " runs, oldest on the left"));
    const table = el("table", null, "history-table");
    const head = el("tr");
    for (const title of ["node", "time", "errors", "cost"]) head.appendChild(el("th", title));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    const dollars = (v) => (v === null ? "-" : "$" + v.toFixed(4));
    // The history is oldest first: its run ``at`` is the page's run comparison.runs[last - at].
    const runLabel = (at) => "run " + (comparison.runs[comparison.runs.length - 1 - at] + 1);
    for (const node of history.nodes) {
      const line = el("tr");
      line.dataset.node = node.node_id;
      line.appendChild(el("td", node.node_id, "cell-text"));
      const started = (metric) => { const step = node.steps.find((s) => s.metric === metric); return step ? step.run : -1; };
      const timeMetric = node.batch ? "p95_ms" : "wall_ms";
      const figures = [[node.batch ? "item p95" : "wall", node[timeMetric], ms, timeMetric],
        ["error rate", node.error_rate, pct, "error_rate"], ["cost", node.cost_usd, dollars, "cost_usd"]];
      for (const [name, values, format, metric] of figures) {
        const td = el("td");
        const known = values.filter((v) => v !== null);
        if (known.length) {
          td.appendChild(chart(name, values, format, started(metric), runLabel));
          td.appendChild(el("span", "latest " + format(known[known.length - 1]), "dim chart-note"));
        } else {
          td.appendChild(el("span", "-", "dim"));
        }
        line.appendChild(td);
      }
      body.appendChild(line);
    }
    block.appendChild(table);
    return block;
  }

  function renderComparisons() {
    const holder = byId("comparisons");
    holder.replaceChildren();
    byId("compare-section").hidden = DATA.comparisons.length === 0;
    for (const comparison of DATA.comparisons) {
      const wrap = el("div", null, "workflow-comparison");
      wrap.appendChild(el("h3", comparison.workflow_name + ": " + comparison.runs.length +
        " runs, newest first; run " + (comparison.new_run + 1) + " against run " + (comparison.base_run + 1)));
      const warnings = el("ul", null, "notes comparison-warnings");
      for (const warning of comparison.diff.warnings) warnings.appendChild(el("li", "warning: " + warning));
      if (warnings.children.length) wrap.appendChild(warnings);
      wrap.appendChild(comparisonTable(comparison));
      wrap.appendChild(historyBlock(comparison));
      holder.appendChild(wrap);
    }
  }

  // -- putting it together -----------------------------------------------------------------
  const currentRun = () => DATA.summary.runs[current];

  function showRun(at) {
    current = at;
    const run = currentRun(), timeline = DATA.timelines[at];
    renderHeader(run, timeline);
    state = prepare(timeline);
    resize();
    for (const option of byId("colour-by").options) {
      option.disabled = option.value !== "status" && state.measureMax[option.value] === null;
    }
    if (colourBy !== "status" && state.measureMax[colourBy] === null) colourBy = "status";
    byId("colour-by").value = colourBy;
    renderLegend();
    showDetails(null);
    renderNodeTable(run);
  }

  function init() {
    const select = byId("run-select");
    if (DATA.summary.runs.length > 1) {
      byId("run-picker").hidden = false;
      DATA.summary.runs.forEach((run, at) => {
        const option = el("option", (at + 1) + ". " + (run.workflow_name || "(unnamed)") + " " +
          orDash(run.start_time) + " " + orDash(run.final_status));
        option.value = String(at);
        select.appendChild(option);
      });
      select.addEventListener("change", () => showRun(Number(select.value)));
    }
    renderComparisons();
    byId("footer").textContent = "Made by " + DATA.generator + " from " +
      DATA.summary.runs.map((run) => run.source).join(", ") + ". Self-contained: no network.";
    showRun(0);
    performance.mark("pflow-waterfall-drawn");
    window.pflowReport = { // for tests and the curious: read-only views of what was drawn
      itemBox(nodeOrder, position) {
        const node = state.timeline.nodes.find((n) => n.order === nodeOrder);
        const box = node ? itemBoxOf(node, position) : null;
        if (!box) return null;
        const rect = canvas.getBoundingClientRect();
        return { x: rect.left + box.x, y: rect.top + box.y, w: box.w, h: box.h };
      },
      view: () => [state.t0, state.t1],
      markMinWidth: MARK_MIN_W,
      setView: setView,
      showRun: showRun,
      colourBy: () => colourBy,
      setColourBy: setColourBy,
    };
  }
  init();
})();
