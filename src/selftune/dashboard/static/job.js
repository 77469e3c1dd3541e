// The job page's curves (uPlot): the whole run, fetched once and then only the new events every 2 s
// until the job has finished. The x axis shows steps, epochs or tokens; log scale drops values <= 0.
"use strict";
(function () {
  const root = document.getElementById("curves");
  if (!root || typeof uPlot === "undefined") return;
  const job = root.dataset.job;
  const POLL_MS = 2000;
  const xSelect = document.getElementById("x-axis");
  const logBox = document.getElementById("log-scale");
  const note = document.getElementById("curve-note");
  const state = {
    train: {step: [], loss: [], accuracy: [], learning_rate: [], tokens_per_second: []},
    valid: {step: [], loss: [], accuracy: []},
    run: null, trainedTokens: null, finished: false, after: null, polled: false,
  };
  // chart id -> what it draws: [source ("train" | "valid"), column, label, colour]
  const CHARTS = [
    {id: "chart-loss", axis: "loss", series: [["train", "loss", "training loss", "#1f6feb"],
                                              ["valid", "loss", "validation loss", "#d9480f"]]},
    {id: "chart-accuracy", axis: "token accuracy", series: [["train", "accuracy", "training accuracy", "#1f6feb"],
                                                            ["valid", "accuracy", "validation accuracy", "#d9480f"]]},
    {id: "chart-learning-rate", axis: "learning rate", series: [["train", "learning_rate", "learning rate", "#8250df"]]},
    {id: "chart-throughput", axis: "tokens/s", series: [["train", "tokens_per_second", "tokens/s", "#116329"]]},
  ];
  const charts = {};

  function lastStep() {
    const steps = state.train.step;
    return steps.length ? steps[steps.length - 1] : 0;
  }
  function stepsPerEpoch() { return state.run ? state.run.steps_per_epoch : null; }
  function tokensPerStep() {
    // a finished run knows its exact tokens; until then, the tokens a step aims at
    if (state.finished && state.trainedTokens && lastStep()) return state.trainedTokens / lastStep();
    return state.run ? state.run.tokens_per_step : null;
  }
  function available(unit) {
    if (unit === "epoch") return !!stepsPerEpoch();
    if (unit === "tokens") return !!tokensPerStep();
    return true;
  }
  function unit() { return available(xSelect.value) ? xSelect.value : "step"; }
  function xOf(step) {
    const u = unit();
    if (u === "epoch") return step / stepsPerEpoch();
    if (u === "tokens") return Math.round(step * tokensPerStep());
    return step;
  }

  function sourcesOf(spec) { return [...new Set(spec.series.map((s) => s[0]))]; }

  function columns(spec) {
    const sources = sourcesOf(spec);
    const steps = sources.length === 1 ? state[sources[0]].step.slice()
      : [...new Set(sources.flatMap((s) => state[s].step))].sort((a, b) => a - b);
    const at = new Map(steps.map((step, i) => [step, i]));
    const log = logBox.checked;
    const data = [steps.map(xOf)];
    for (const [source, column] of spec.series) {
      const values = new Array(steps.length).fill(null);
      const from = state[source];
      for (let i = 0; i < from.step.length; i++) {
        const v = from[column][i];
        values[at.get(from.step[i])] = v === null || (log && v <= 0) ? null : v;
      }
      data.push(values);
    }
    return data;
  }

  function drawEpochMarks(u) {
    const perEpoch = stepsPerEpoch();
    const epochs = state.run ? state.run.n_epochs : null;
    if (!perEpoch || !epochs) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "rgba(27, 31, 36, 0.35)";
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = 1;
    for (let k = 1; k < epochs; k++) {
      const x = xOf(k * perEpoch);
      if (u.scales.x.min == null || x < u.scales.x.min || x > u.scales.x.max) continue;
      const px = Math.round(u.valToPos(x, "x", true)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, u.bbox.top);
      ctx.lineTo(px, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }

  function tick(v) {  // y labels that tell 1e-4 from 2e-4 (a learning rate), and 0.7 from 0.75
    if (v == null) return "";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-2 || a >= 1e6)) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }

  function make(spec) {
    const figure = document.getElementById(spec.id);
    if (charts[spec.id]) charts[spec.id].destroy();
    const u = unit();
    const options = {
      width: Math.max(280, figure.clientWidth - 20),
      height: 220,
      scales: {x: {time: false}, y: {distr: logBox.checked ? 3 : 1}},
      axes: [{label: u}, {label: spec.axis, size: 60, values: (self, splits) => splits.map(tick)}],
      series: [{label: u}, ...spec.series.map(([source, , label, colour]) => ({
        label, stroke: colour, width: 1.5, spanGaps: true,
        points: {show: source === "valid", size: 5},
      }))],
      hooks: {draw: [drawEpochMarks]},
    };
    charts[spec.id] = new uPlot(options, columns(spec), figure);
  }

  function update(rebuild) {
    for (const spec of CHARTS) {
      if (rebuild || !charts[spec.id]) make(spec);
      else charts[spec.id].setData(columns(spec));
      document.getElementById(spec.id).dataset.points = String(
        sourcesOf(spec).reduce((n, s) => n + state[s].step.length, 0));
    }
    for (const option of xSelect.options) option.disabled = !available(option.value);
    const epochs = state.run && state.run.n_epochs;
    root.dataset.epochMarks = String(stepsPerEpoch() && epochs ? epochs - 1 : 0);
    note.textContent = state.train.step.length ? "" : "No steps yet: the curves start with the first step.";
  }

  function append(into, from) {
    for (const key of Object.keys(into)) into[key].push(...(from[key] || []));
  }

  async function poll() {
    const url = "/jobs/" + encodeURIComponent(job) + "/curves.json"
      + (state.after ? "?after=" + encodeURIComponent(state.after) : "");
    let answer;
    try {
      answer = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    } catch (error) {
      note.textContent = "The server can't be reached; trying again.";
      setTimeout(poll, POLL_MS * 2);
      return;
    }
    if (answer.status === 401) { window.location.assign("/login"); return; }
    if (!answer.ok) { note.textContent = "The curves are not available (" + answer.status + ")."; return; }
    const data = await answer.json();
    const rebuild = !state.polled || !!data.run;  // the run's plan changes the axes and the epoch marks
    state.polled = true;
    if (data.run) state.run = data.run;
    state.finished = data.finished;
    state.trainedTokens = data.trained_tokens;
    append(state.train, data.train);
    append(state.valid, data.valid);
    if (data.last_event) state.after = data.last_event;
    update(rebuild);
    if (data.finished) root.dataset.complete = "true";
    else setTimeout(poll, POLL_MS);
  }

  xSelect.addEventListener("change", () => update(true));
  logBox.addEventListener("change", () => update(true));
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => update(true), 200);
  });
  poll();
})();
