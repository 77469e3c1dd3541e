// The job page's curves (uPlot, through charts.js): the whole run, fetched once and then only the new
// events every 2 s until the job has finished. The x axis shows steps, epochs or tokens; log scale drops
// values <= 0. Dashed lines mark the ends of epochs.
"use strict";
(function () {
  const root = document.getElementById("curves");
  if (!root || typeof uPlot === "undefined" || !window.SelftuneCharts) return;
  const {Run, poll: fetchNew, align, plot, onResize, markDrawn} = window.SelftuneCharts;
  const run = new Run(root.dataset.job);
  const POLL_MS = 2000;
  const xSelect = document.getElementById("x-axis");
  const logBox = document.getElementById("log-scale");
  const note = document.getElementById("curve-note");
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

  function unit() { return run.available(xSelect.value) ? xSelect.value : "step"; }

  function columns(spec) {
    const u = unit();
    return align(spec.series.map(([source, column]) => ({xs: run.xs(u, source), ys: run[source][column]})),
                 logBox.checked);
  }

  function drawEpochMarks(u) {
    const perEpoch = run.stepsPerEpoch();
    const epochs = run.plan ? run.plan.n_epochs : null;
    if (!perEpoch || !epochs) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "rgba(27, 31, 36, 0.35)";
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = 1;
    for (let k = 1; k < epochs; k++) {
      const x = run.xOf(unit(), k * perEpoch);
      if (u.scales.x.min == null || x < u.scales.x.min || x > u.scales.x.max) continue;
      const px = Math.round(u.valToPos(x, "x", true)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, u.bbox.top);
      ctx.lineTo(px, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }

  function make(spec) {
    charts[spec.id] = plot(document.getElementById(spec.id), {
      xLabel: unit(), yLabel: spec.axis, log: logBox.checked, data: columns(spec),
      series: spec.series.map(([source, , label, colour]) => ({label, colour, points: source === "valid"})),
      hooks: {draw: [drawEpochMarks]},
    });
  }

  function update(rebuild) {
    for (const spec of CHARTS) {
      if (rebuild || !charts[spec.id]) make(spec);
      else charts[spec.id].setData(columns(spec));
      const sources = [...new Set(spec.series.map((s) => s[0]))];
      document.getElementById(spec.id).dataset.points = String(
        sources.reduce((n, s) => n + run[s].step.length, 0));
    }
    for (const option of xSelect.options) option.disabled = !run.available(option.value);
    const epochs = run.plan && run.plan.n_epochs;
    root.dataset.epochMarks = String(run.stepsPerEpoch() && epochs ? epochs - 1 : 0);
    note.textContent = run.train.step.length ? "" : "No steps yet: the curves start with the first step.";
  }

  async function poll() {
    const answer = await fetchNew(run);
    if (answer.outcome === "offline") {
      note.textContent = "The server can't be reached; trying again.";
      setTimeout(poll, POLL_MS * 2);
      return;
    }
    if (answer.outcome === "login") { window.location.assign("/login"); return; }
    if (answer.outcome === "gone") {
      note.textContent = "The curves are not available (" + answer.status + ").";
      return;
    }
    update(answer.rebuild);
    markDrawn(root, "selftune:curves-drawn");
    if (run.finished) root.dataset.complete = "true";
    else setTimeout(poll, POLL_MS);
  }

  xSelect.addEventListener("change", () => update(true));
  logBox.addEventListener("change", () => update(true));
  onResize(() => update(true));
  poll();
})();
