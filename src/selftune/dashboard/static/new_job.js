// selftune dashboard, New job page: drag-and-drop upload with progress, the hyperparameters of the chosen
// method, and the statistics of the chosen base model. Without this script the page still works: the
// upload form posts and redirects, every hyperparameter field is shown, and the server checks them all.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const form = document.getElementById("upload");
  const input = document.getElementById("upload-file");
  const zone = document.getElementById("dropzone");
  const bar = document.getElementById("upload-progress");
  const problem = document.getElementById("upload-problem");

  function say(text) { problem.textContent = text; }

  // POST /new/upload as the form would, asking for JSON so the page can show progress and errors in place
  function upload(file) {
    if (!file) { say("Choose a file to upload."); return; }
    const body = new FormData(form);
    body.set("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-CSRF-Token", csrf);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = event.loaded / event.total;
    });
    request.addEventListener("load", () => {
      let answer = null;
      try { answer = JSON.parse(request.responseText); } catch (_) { answer = null; }
      if (request.status === 200 && answer && answer.location) {
        window.location.assign(answer.location);
        return;
      }
      bar.hidden = true;
      zone.classList.remove("busy");
      const text = request.responseText || "";
      say(answer && answer.error ? answer.error.message
        : text && text.length < 300 && !text.includes("<") ? text : `Upload refused (HTTP ${request.status}).`);
    });
    request.addEventListener("error", () => {
      bar.hidden = true;
      zone.classList.remove("busy");
      say("The upload failed: the server could not be reached.");
    });
    say("");
    bar.value = 0;
    bar.hidden = false;
    zone.classList.add("busy");
    request.send(body);
  }

  if (form && input && zone) {
    form.addEventListener("submit", (event) => { event.preventDefault(); upload(input.files[0]); });
    input.addEventListener("change", () => { if (input.files.length) upload(input.files[0]); });
    ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      if (files.length > 1) { say("Drop one file at a time."); return; }
      upload(files[0]);
    });
    // a file dropped beside the zone must not make the browser leave the page to open it
    ["dragover", "drop"].forEach((name) => document.addEventListener(name, (event) => {
      if (!event.target.closest || (!event.target.closest("#dropzone") && event.target.type !== "file")) {
        event.preventDefault();
      }
    }));
  }

  // only the chosen method's hyperparameters: the others are hidden and disabled (so not sent)
  const method = document.getElementById("method");
  function showHyperparameters() {
    document.querySelectorAll(".hp[data-methods]").forEach((element) => {
      const takes = element.dataset.methods.split(" ").includes(method.value);
      element.classList.toggle("off", !takes);
      element.querySelectorAll("input").forEach((field) => { field.disabled = !takes; });
    });
  }
  if (method) {
    method.addEventListener("change", showHyperparameters);
    showHyperparameters();
  }

  // another base model or number of epochs: that model's statistics and the estimate for those epochs
  // (the server uses the auto rule's epochs when n_epochs is auto or not a valid number); later uploads
  // keep the chosen model
  const model = document.getElementById("model");
  const epochs = document.getElementById("hp_n_epochs");
  const file = document.getElementById("file");
  function restat() {
    if (form) form.elements.model.value = model.value;
    const query = new URLSearchParams({ file: file.dataset.file, model: model.value });
    if (epochs && !epochs.disabled) query.set("epochs", epochs.value);
    const stats = document.getElementById("stats");
    if (stats) stats.classList.add("stale");
    window.htmx.ajax("GET", `/new/stats?${query}`, { target: "#stats", swap: "outerHTML" });
  }
  if (model && file) {
    model.addEventListener("change", restat);
    if (epochs) epochs.addEventListener("change", restat);
  }
})();
