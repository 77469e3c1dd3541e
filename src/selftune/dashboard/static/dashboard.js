// selftune dashboard: the CSRF header on htmx requests, and copy buttons. No inline scripts anywhere
// (the Content-Security-Policy forbids them), so everything the pages do is in this file and job.js.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  // every request htmx sends (the job buttons' POSTs) carries this session's CSRF token
  document.addEventListener("htmx:config:request", (event) => {
    if (csrf) event.detail.ctx.request.headers["X-CSRF-Token"] = csrf;
  });

  function selectBefore(button) {
    const code = button.previousElementSibling;
    if (!code) return;
    const range = document.createRange();
    range.selectNodeContents(code);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C";
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const text = button.dataset.copy;
    if (!navigator.clipboard) { selectBefore(button); return; }
    navigator.clipboard.writeText(text).then(() => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    }, () => selectBefore(button));
  });
})();
