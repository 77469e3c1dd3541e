// The compare page's curves (uPlot, through charts.js): each job's run from its own curves.json,
// one chart per metric with one coloured series per job (the legend above names them). Unfinished
// jobs are asked for what is new every 2 s. The x axis is step, epoch or tokens (an axis is offered
// when every job with steps can be drawn on it); log scale drops values <= 0.
"use strict";
(function () {
  const root = document.getElementById("curves");
  const legend = document.getElementById("compared");
  if (!root || !legend || typeof uPlot === "undefined" || !window.SelftuneCharts) return;
  const {PALETTE, Run, poll: fetchNew, align, plot, onResize, markDrawn} = window.SelftuneCharts;
  const POLL_MS = 2000;
  const xSelect = document.getElementById("x-axis");
  const logBox = document.getElementById("log-scale");
  const note = document.getElementById("curve-note");
  const jobs = [...legend.querySelectorAll("li[data-job]")].map((li, i) => ({
    run: new Run(li.dataset.job), label: li.dataset.label, colour: PALETTE[i % PALETTE.length],
  }));
  const figures = [...root.querySelectorAll("figure[data-source]")];
  const charts = new Map();
  const problems = new Map();  // job id -> why its curves are missing

  function available(unit) {
    const drawn = jobs.filter((j) => j.run.train.step.length);
    return unit === "step" || (drawn.length > 0 && drawn.every((j) => j.run.available(unit)));
  }
  function unit() { return available(xSelect.value) ? xSelect.value : "step"; }

  function columns(figure) {
    const {source, column} = figure.dataset;
    const u = unit();
    return align(jobs.map((j) => ({xs: j.run.xs(u, source), ys: j.run[source][column]})), logBox.checked);
  }

  function update(rebuild) {
    for (const figure of figures) {
      if (rebuild || !charts.has(figure)) {
        charts.set(figure, plot(figure, {
          xLabel: unit(), yLabel: figure.dataset.axis, log: logBox.checked, data: columns(figure),
          series: jobs.map((j) => ({label: j.label, colour: j.colour, points: figure.dataset.source === "valid"})),
        }));
      } else {
        charts.get(figure).setData(columns(figure));
      }
      const source = figure.dataset.source;
      figure.dataset.points = String(jobs.reduce((n, j) => n + j.run[source].step.length, 0));
      figure.dataset.series = String(jobs.filter((j) => j.run[source].step.length).length);
    }
    for (const option of xSelect.options) option.disabled = !available(option.value);
    const waiting = jobs.filter((j) => !j.run.train.step.length && !problems.has(j.run.job));
    note.textContent = [...problems.values(), waiting.length
      ? waiting.map((j) => j.run.job).join(", ") + ": no steps yet." : ""].filter(Boolean).join(" ");
  }

  // one round: every unfinished job asked for what is new, then the charts redrawn once
  async function round() {
    const pending = jobs.filter((j) => !j.run.finished && !problems.has(j.run.job));
    const answers = await Promise.all(pending.map((j) => fetchNew(j.run)));
    if (answers.some((a) => a.outcome === "login")) { window.location.assign("/login"); return; }
    answers.forEach((a, i) => {
      if (a.outcome === "gone") problems.set(pending[i].run.job, pending[i].run.job + ": curves not available ("
                                             + a.status + ").");
    });
    update(!charts.size || answers.some((a) => a.rebuild));
    markDrawn(root, "selftune:compare-drawn");
    const offline = answers.some((a) => a.outcome === "offline");
    if (offline) note.textContent = "The server can't be reached; trying again.";
    if (jobs.every((j) => j.run.finished || problems.has(j.run.job))) root.dataset.complete = "true";
    else setTimeout(round, offline ? POLL_MS * 2 : POLL_MS);
  }

  xSelect.addEventListener("change", () => update(true));
  logBox.addEventListener("change", () => update(true));
  onResize(() => update(true));
  round();
})();
