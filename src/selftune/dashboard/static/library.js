// selftune dashboard, files and models pages: a delete form asks first (its data-confirm text is shown
// as the dialog's plain text). No inline scripts: the Content-Security-Policy forbids them.
"use strict";
(function () {
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
