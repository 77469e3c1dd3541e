// Chart code shared by the job page (job.js) and the compare page (compare.js): one run's curves as
// they arrive from /jobs/{id}/curves.json, its x axis in steps, epochs or tokens, lines aligned on one
// x axis for uPlot, and a uPlot chart with the dashboard's look. Loaded before the page's own script.
"use strict";
window.SelftuneCharts = (function () {
  // one colour per series: the compare page's 8 jobs (compare.css has the same colours for its legend)
  const PALETTE = ["#1f6feb", "#d9480f", "#116329", "#8250df", "#bf3989", "#9a6700", "#0a7d8c", "#57606a"];

  // One job's curves: the columns of its metrics events, its plan, and where the next poll starts.
  class Run {
    constructor(job) {
      this.job = job;
      this.train = {step: [], loss: [], accuracy: [], learning_rate: [], tokens_per_second: []};
      this.valid = {step: [], loss: [], accuracy: []};
      this.plan = null;
      this.trainedTokens = null;
      this.finished = false;
      this.after = null;
      this.polled = false;
    }

    url() {
      return "/jobs/" + encodeURIComponent(this.job) + "/curves.json"
        + (this.after ? "?after=" + encodeURIComponent(this.after) : "");
    }

    // an answer of curves.json appended; true when the axes must be rebuilt (first answer, or the plan)
    absorb(data) {
      const rebuild = !this.polled || !!data.run;
      this.polled = true;
      if (data.run) this.plan = data.run;
      this.finished = data.finished;
      this.trainedTokens = data.trained_tokens;
      for (const [into, from] of [[this.train, data.train], [this.valid, data.valid]]) {
        for (const key of Object.keys(into)) {
          const values = from[key] || [];
          for (let i = 0; i < values.length; i++) into[key].push(values[i]);  // no spread: 10,000 arguments
        }
      }
      if (data.last_event) this.after = data.last_event;
      return rebuild;
    }

    lastStep() {
      const steps = this.train.step;
      return steps.length ? steps[steps.length - 1] : 0;
    }

    stepsPerEpoch() { return this.plan ? this.plan.steps_per_epoch : null; }

    tokensPerStep() {
      // a finished run knows its exact tokens; until then, the tokens a step aims at
      if (this.finished && this.trainedTokens && this.lastStep()) return this.trainedTokens / this.lastStep();
      return this.plan ? this.plan.tokens_per_step : null;
    }

    available(unit) {
      if (unit === "epoch") return !!this.stepsPerEpoch();
      if (unit === "tokens") return !!this.tokensPerStep();
      return true;
    }

    // the x of a step in `unit` (the caller checked available(unit))
    xOf(unit, step) {
      if (unit === "epoch") return step / this.stepsPerEpoch();
      if (unit === "tokens") return Math.round(step * this.tokensPerStep());
      return step;
    }

    xs(unit, source) {
      const steps = this[source].step;
      if (unit === "step") return steps;
      const out = new Array(steps.length);
      for (let i = 0; i < steps.length; i++) out[i] = this.xOf(unit, steps[i]);
      return out;
    }

    // the points this run has, training and validation
    points() { return this.train.step.length + this.valid.step.length; }
  }

  // fetch what is new for `run`; answers "ok", "login" (signed out), "gone" (an error status, given in
  // run.problem) or "offline" (the server can't be reached)
  async function poll(run) {
    let answer;
    try {
      answer = await fetch(run.url(), {credentials: "same-origin", headers: {Accept: "application/json"}});
    } catch (error) {
      return {outcome: "offline"};
    }
    if (answer.status === 401) return {outcome: "login"};
    if (!answer.ok) return {outcome: "gone", status: answer.status};
    return {outcome: "ok", rebuild: run.absorb(await answer.json())};
  }

  function sameValues(a, b) {
    if (a === b) return true;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  // lines [{xs, ys}] -> uPlot's columns [x, y1, y2, ...] on the union of their x values (a line without a
  // value at an x has a gap there, which spanGaps bridges); with `log`, values <= 0 are left out
  function align(lines, log) {
    const keep = (v) => (v === null || v === undefined || (log && v <= 0) ? null : v);
    if (lines.length && lines.every((line) => sameValues(line.xs, lines[0].xs))) {
      return [lines[0].xs.slice(), ...lines.map((line) => line.ys.map(keep))];
    }
    const all = new Set();
    for (const line of lines) for (const x of line.xs) all.add(x);
    const xs = [...all].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const data = [xs];
    for (const line of lines) {
      const values = new Array(xs.length).fill(null);
      for (let i = 0; i < line.xs.length; i++) values[at.get(line.xs[i])] = keep(line.ys[i]);
      data.push(values);
    }
    return data;
  }

  // y labels that tell 1e-4 from 2e-4 (a learning rate), and 0.7 from 0.75
  function tick(v) {
    if (v == null) return "";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-2 || a >= 1e6)) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }

  // a uPlot chart in `figure` (replacing the one drawn there before):
  // {xLabel, yLabel, log, series: [{label, colour, points}], data, hooks}
  const drawn = new WeakMap();
  function plot(figure, spec) {
    const old = drawn.get(figure);
    if (old) old.destroy();
    const options = {
      width: Math.max(280, figure.clientWidth - 20),
      height: 220,
      scales: {x: {time: false}, y: {distr: spec.log ? 3 : 1}},
      axes: [{label: spec.xLabel}, {label: spec.yLabel, size: 60, values: (self, splits) => splits.map(tick)}],
      series: [{label: spec.xLabel}, ...spec.series.map((s) => ({
        label: s.label, stroke: s.colour, width: 1.5, spanGaps: true, points: {show: !!s.points, size: 5},
      }))],
      hooks: spec.hooks || {},
    };
    const chart = new uPlot(options, spec.data, figure);
    drawn.set(figure, chart);
    return chart;
  }

  // call `redraw` 200 ms after the window stops being resized (the charts take the new width)
  function onResize(redraw) {
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(redraw, 200);
    });
  }

  // once the charts have been painted: a performance mark and a data attribute (bench/dashboard.py and
  // the browser tests read them)
  function markDrawn(root, name) {
    if (root.dataset.drawnMs) return;
    requestAnimationFrame(() => {
      if (root.dataset.drawnMs) return;
      performance.mark(name);
      root.dataset.drawnMs = String(Math.round(performance.now()));
    });
  }

  return {PALETTE, Run, poll, align, tick, plot, onResize, markDrawn};
})();
