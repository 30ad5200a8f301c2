// The live rollout dashboard (GET /dashboard): polls the service's own JSON routes every
// POLL_MS and redraws the page's live regions. Data only ever reaches the page through
// textContent and SVG attributes (never innerHTML), and nothing is fetched from elsewhere.
"use strict";
(function () {
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const VARIANTS = ["holdout", "baseline", "candidate"];
  const COLOURS = { holdout: "#8c8c8c", baseline: "#3f6fb5", candidate: "#1b7f3b", spent: "#6a9f7a" };

  // ------------------------------------------------------------------ formatting
  // The shell's table.py rules: money without decimals from 1,000 on (and 0), cents below;
  // four significant digits; an empty cell for a missing value.
  function isNumber(v) { return typeof v === "number" && Number.isFinite(v); }
  function money(v) {
    if (!isNumber(v)) return "";
    const digits = Math.abs(v) >= 1000 || v === 0 ? 0 : 2;
    return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function number(v) {
    if (!isNumber(v)) return "";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
    return String(Number(v.toPrecision(4)));
  }
  function integer(v) { return isNumber(v) ? Math.round(v).toLocaleString("en-US") : ""; }
  function percent(v) { return isNumber(v) ? number(100 * v) + "%" : ""; }
  function interval(low, high, write) {
    return isNumber(low) && isNumber(high) ? write(low) + " .. " + write(high) : "";
  }
  function when(us) { return isNumber(us) ? new Date(us / 1000).toISOString().replace(".000Z", "Z") : ""; }

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fill(id, ...nodes) {
    const region = document.getElementById(id);
    if (region) region.replaceChildren(...nodes.filter((n) => n));
  }
  function para(text, cls) { return el("p", cls ? { class: cls } : {}, text); }
  function verdict(v) { return el("span", { class: "verdict verdict-" + (v || "hold") }, v || "none"); }
  // A table in the shell's markup: columns are [label, kind] with kind "text" or a number kind.
  // ``ids`` (optional) names each body row, for whoever reads the page (and the tests).
  function table(columns, rows, ids) {
    const head = el("tr", {}, ...columns.map(([label, kind]) =>
      el("th", { class: kind === "text" ? "text" : "num" }, label)));
    const body = rows.map((row, r) => el("tr", ids ? { id: ids[r] } : {}, ...row.map((cell, i) =>
      el("td", { class: columns[i][1] === "text" ? "text" : "num" }, cell))));
    return el("div", { class: "table" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
  }
  function facts(items) {
    const list = el("dl");
    for (const [label, value] of items) {
      if (value === "" || value === null || value === undefined) continue;
      list.append(el("dt", {}, label), el("dd", {}, value));
    }
    return list;
  }

  // ------------------------------------------------------------------ reading /v1/rollout
  // One place knows the RolloutStatus shape (liftwise.serve.rollouts): everything below
  // draws from what this returns.
  function variantRows(status, budget) {
    const rows = [];
    for (const name of VARIANTS) {
      const totals = (status.totals || {})[name];
      const counters = (status.counters || {})[name];
      const moments = (status.profit || {})[name];
      if (!totals && !counters) continue;
      const t = totals || {};
      const n = moments ? moments.n : 0;
      const mean = n ? moments.total / n : null;
      const variance = n > 1 ? Math.max(0, (moments.total_squares - moments.total ** 2 / n) / (n - 1)) : null;
      const half = variance === null ? null : 1.959964 * Math.sqrt(variance / n);
      rows.push({
        variant: name,
        decisions: t.decisions, treated: t.treated, spend: t.spend, outcomes: t.outcomes,
        netProfit: t.net_profit,
        roi: isNumber(t.net_profit) && t.spend > 0 ? t.net_profit / t.spend : null,
        spendShare: isNumber(t.spend) && budget && budget.budget > 0 ? t.spend / budget.budget : null,
        spendPerUnit: t.decisions > 0 ? t.spend / t.decisions : null,
        meanNet: mean, low: half === null ? null : mean - half, high: half === null ? null : mean + half, n: n,
        requests: counters ? counters.requests : null,
        errorRate: counters ? counters.error_rate : null,
        p99: counters ? counters.p99_ms : null,
      });
    }
    return rows;
  }
  function businessEvidence(status) {
    const evaluation = status.evaluation;
    const gate = evaluation && (evaluation.gates || []).find((g) => g.gate === "business");
    return gate ? gate.evidence : null;
  }

  // ------------------------------------------------------------------ charts (inline SVG)
  function spendChart(rows, budget) {
    const width = 640, height = 74, left = 8, right = 8, barY = 18, barH = 22;
    const total = budget && budget.budget > 0 ? budget.budget : 0;
    const chart = svg("svg", { class: "chart", id: "spend-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    chart.append(svg("title", {}, "Spend (per variant in a rollout) against the campaign budget"));
    const span = width - left - right;
    chart.append(svg("rect", { x: left, y: barY, width: span, height: barH, fill: "#f1f1f1", stroke: "#bbb" }));
    if (!total) return chart;
    let x = left;
    const parts = rows.length ? rows : [{ variant: "spent", spend: budget.spent }];
    for (const row of parts) {
      const w = isNumber(row.spend) ? Math.min(span, (row.spend / total) * span) : 0;
      chart.append(svg("rect", { x, y: barY, width: w, height: barH, fill: COLOURS[row.variant], "data-variant": row.variant }));
      x += w;
    }
    if (isNumber(budget.allowed_now)) {
      const ax = left + Math.min(1, budget.allowed_now / total) * span;
      chart.append(svg("line", { x1: ax, x2: ax, y1: barY - 6, y2: barY + barH + 6, stroke: "#b00020", "stroke-width": 2 }));
      chart.append(svg("text", { x: Math.min(ax + 4, width - 150), y: 12 }, "allowed now " + money(budget.allowed_now)));
    }
    chart.append(svg("text", { x: left, y: barY + barH + 16 },
      "spent " + money(budget.spent) + " of " + money(total) + " (" + percent(budget.spent / total) + ")"));
    return chart;
  }
  // Points with interval bars on one horizontal axis; rows: {label, value, low, high, colour}.
  function intervalChart(id, title, rows) {
    const width = 640, rowH = 30, top = 22, left = 150, right = 30;
    const height = top + rowH * rows.length + 24;
    const chart = svg("svg", { class: "chart", id, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    chart.append(svg("title", {}, title));
    const values = rows.flatMap((r) => [r.value, r.low, r.high]).filter(isNumber).concat([0]);
    let lo = Math.min(...values), hi = Math.max(...values);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = 0.08 * (hi - lo);
    lo -= pad; hi += pad;
    const xOf = (v) => left + ((v - lo) / (hi - lo)) * (width - left - right);
    chart.append(svg("line", { x1: xOf(0), x2: xOf(0), y1: top - 8, y2: height - 20, stroke: "#999", "stroke-dasharray": "3 3" }));
    chart.append(svg("text", { x: left, y: height - 6 }, money(lo)));
    chart.append(svg("text", { x: width - right - 60, y: height - 6 }, money(hi)));
    chart.append(svg("text", { x: xOf(0) + 3, y: top - 10 }, "0"));
    rows.forEach((row, i) => {
      const y = top + rowH * i + rowH / 2;
      chart.append(svg("text", { x: 4, y: y + 4 }, row.label));
      if (isNumber(row.low) && isNumber(row.high)) {
        chart.append(svg("line", { x1: xOf(row.low), x2: xOf(row.high), y1: y, y2: y, stroke: row.colour, "stroke-width": 3 }));
        for (const end of [row.low, row.high]) {
          chart.append(svg("line", { x1: xOf(end), x2: xOf(end), y1: y - 6, y2: y + 6, stroke: row.colour, "stroke-width": 2 }));
        }
      }
      if (isNumber(row.value)) {
        chart.append(svg("circle", { cx: xOf(row.value), cy: y, r: 5, fill: row.colour, "data-label": row.label }));
      }
    });
    return chart;
  }

  // ------------------------------------------------------------------ sections
  function drawStatus(status, budget, model) {
    if (!status) {
      const serving = model ? model.name + " v" + model.version : "no model yet";
      fill("status",
        el("p", { id: "rollout-state" }, "No active rollout", budget ? " for campaign " + budget.campaign : "",
          ": the service serves " + serving + " to every unit."),
        para("Refreshed " + new Date().toISOString().slice(11, 19) + " UTC.", "placeholder"));
      return;
    }
    const state = status.state;
    const steps = (state.plan && state.plan.steps) || [];
    const step = steps[state.step];
    fill("status",
      el("p", { id: "rollout-state" }, "Rollout ", el("b", {}, state.name), " of campaign " + state.campaign + ": ",
        el("span", { class: "verdict verdict-" + (state.status === "aborted" ? "fail" : state.status === "running" ? "pass" : "hold") }, state.status),
        ", step " + (state.step + 1) + " of " + steps.length + (step ? " (" + step.name + ")" : "") +
        ", candidate share " + percent(state.share) + "."),
      state.reason ? para(state.reason) : null,
      para("Last change " + when(state.updated_us) + "; refreshed " + new Date().toISOString().slice(11, 19) + " UTC.", "placeholder"));
  }

  function drawBudget(budget, rows) {
    if (!budget) { fill("budget", para("GET /v1/budget did not answer.", "placeholder")); return; }
    fill("budget", spendChart(rows, budget), facts([
      ["Campaign", budget.campaign],
      ["Budget", money(budget.budget)],
      ["Spent (all workers)", money(budget.spent) + " (" + percent(budget.budget > 0 ? budget.spent / budget.budget : null) + ")"],
      ["Allowed by the pacing now", money(budget.allowed_now)],
      ["Remaining", money(budget.remaining)],
      ["Window", budget.window_start ? budget.window_start + " .. " + budget.window_end : "none (no pacing)"],
    ]));
  }

  function drawModel(model) {
    if (!model) { fill("model", para("No model loaded yet.", "placeholder")); return; }
    fill("model", facts([
      ["Serving", model.name + " v" + model.version],
      ["Learner", model.learner || ""],
      ["Profit@K (race, validation)", isNumber(model.profit_at_k)
        ? money(model.profit_at_k) + " at K = " + percent(model.k) + ", 95% CI " + interval(model.profit_at_k_low, model.profit_at_k_high, money)
        : "not in the bundle (trained outside liftwise train)"],
    ]));
  }

  function drawVariants(rows) {
    if (!rows.length) { fill("variants", para("No decisions on this step yet.", "placeholder")); return; }
    const columns = [["variant", "text"], ["decisions", "n"], ["treated", "n"], ["spend", "n"], ["of budget", "n"],
      ["spend per unit", "n"], ["outcomes", "n"], ["net profit", "n"], ["ROI", "n"], ["requests", "n"],
      ["error rate", "n"], ["p99 ms", "n"]];
    const cells = rows.map((r) => [r.variant, integer(r.decisions), integer(r.treated), money(r.spend), percent(r.spendShare),
      money(r.spendPerUnit), integer(r.outcomes), money(r.netProfit), percent(r.roi), integer(r.requests),
      percent(r.errorRate), number(r.p99)]);
    const out = [table(columns, cells, rows.map((r) => "variant-" + r.variant))];
    const base = rows.find((r) => r.variant === "baseline"), cand = rows.find((r) => r.variant === "candidate");
    if (base && cand && isNumber(base.spendPerUnit) && isNumber(cand.spendPerUnit)) {
      const saved = (base.spendPerUnit - cand.spendPerUnit) * cand.decisions;
      out.push(el("p", { id: "budget-saved" }, "Budget saved against the current policy: ", el("b", {}, money(saved)),
        " (baseline spend per unit " + money(base.spendPerUnit) + " minus the candidate's " + money(cand.spendPerUnit) +
        ", times " + integer(cand.decisions) + " candidate units)."));
    }
    out.push(para("ROI = net profit of the units with outcomes / spend; spend is the expected cost reserved.", "placeholder"));
    fill("variants", ...out);
  }

  function drawUplift(rows, evidence) {
    const out = [];
    if (evidence && evidence.comparisons && evidence.comparisons.length) {
      const level = percent(evidence.confidence);
      out.push(table(
        [["comparison", "text"], ["uplift per unit", "n"], [level + " always-valid CI", "n"], ["p-value", "n"], ["units", "n"], ["shows", "text"]],
        evidence.comparisons.map((c) => ["candidate vs " + c.against, money(c.estimate), interval(c.ci_low, c.ci_high, money),
          number(c.p_value), integer(c.n_candidate) + " / " + integer(c.n_against),
          c.shows_harm ? "harm" : c.shows_uplift ? "uplift" : "no difference yet"]),
        evidence.comparisons.map((c) => "uplift-vs-" + c.against)));
      out.push(intervalChart("uplift-chart", "Net profit uplift per unit of the candidate with its interval",
        evidence.comparisons.map((c) => ({ label: "vs " + c.against, value: c.estimate, low: c.ci_low, high: c.ci_high, colour: COLOURS.candidate }))));
    } else {
      out.push(para("No business evaluation yet (too few outcomes, or the step has no business gate).", "placeholder"));
    }
    const measured = rows.filter((r) => r.n > 0);
    if (measured.length) {
      out.push(intervalChart("profit-chart", "Net profit per unit per variant (95% normal interval)",
        measured.map((r) => ({ label: r.variant + " (n=" + integer(r.n) + ")", value: r.meanNet, low: r.low, high: r.high, colour: COLOURS[r.variant] }))));
    }
    fill("uplift", ...out);
  }

  function drawGates(status) {
    const evaluation = status && status.evaluation;
    if (!evaluation) { fill("gates", para("Not evaluated yet.", "placeholder")); return; }
    fill("gates",
      el("p", { id: "evaluation" }, "Step " + (evaluation.step + 1) + " (" + evaluation.step_name + "): ", verdict(evaluation.verdict),
        " — " + evaluation.reason + (evaluation.minimums_met ? "" : " (the step's minimums are not met yet)")),
      table([["gate", "text"], ["verdict", "text"], ["reason", "text"]],
        evaluation.gates.map((g) => [g.gate, verdict(g.verdict), g.reason]),
        evaluation.gates.map((g) => "gate-" + g.gate)));
  }

  function drawHistory(status) {
    const history = (status && status.history) || [];
    if (!history.length) { fill("history", para("No history.", "placeholder")); return; }
    fill("history", table(
      [["time (UTC)", "text"], ["kind", "text"], ["action", "text"], ["status", "text"], ["step", "n"], ["share", "n"], ["verdict", "text"], ["reason", "text"]],
      history.slice(-15).reverse().map((h) => [when(h.at_us), h.kind, h.action, h.status, integer(h.step + 1), percent(h.share),
        h.verdict ? verdict(h.verdict) : "", h.reason || ""])));
  }

  // ------------------------------------------------------------------ polling
  async function json(path) {
    try {
      const response = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
      return response.ok ? await response.json() : null;
    } catch (err) {
      return null;
    }
  }
  function active(status) { return status && status.state ? status : null; }

  async function refresh() {
    const [rollout, budget, model] = await Promise.all([json("/v1/rollout"), json("/v1/budget"), json("/v1/model")]);
    const status = active(rollout);
    const rows = status ? variantRows(status, budget) : [];
    drawStatus(status, budget, model);
    drawBudget(budget, rows);
    drawModel(model);
    drawVariants(rows);
    drawUplift(rows, status ? businessEvidence(status) : null);
    drawGates(status);
    drawHistory(status);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }

  function loop() {
    refresh().finally(() => setTimeout(loop, POLL_MS));
  }
  loop();
})();
