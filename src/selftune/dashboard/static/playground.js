// selftune dashboard, playground: one conversation sent to 2-4 models at once, each column's answer
// streamed from /playground/chat (the chat service's server-sent events) with fetch() + ReadableStream.
// Model answers are untrusted: they only ever go into the page as text (textContent, text nodes).
"use strict";
(function () {
  const form = document.getElementById("playground");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const columns = Array.from(document.querySelectorAll("#columns .column"));
  const turns = document.getElementById("turns");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const formProblem = document.getElementById("form-problem");
  let running = [];

  const visible = () => columns.filter((c) => !c.hidden);
  const $ = (column, selector) => column.querySelector(selector);

  // ---- the conversation: more turns, removing one -------------------------------------------------
  document.getElementById("add-turn").addEventListener("click", () => {
    const last = turns.lastElementChild;
    const turn = last.cloneNode(true);
    $(turn, "textarea").value = "";
    // alternate roles: after a user message comes the assistant's, and the other way round
    $(turn, "select").value = $(last, "select").value === "user" ? "assistant" : "user";
    turns.appendChild(turn);
    $(turn, "textarea").focus();
  });
  turns.addEventListener("click", (event) => {
    if (!event.target.closest(".remove-turn") || turns.children.length === 1) return;
    event.target.closest(".turn").remove();
  });

  // ---- columns: add, remove, and keep the address naming the chosen models -----------------------
  function remember() {
    const query = new URLSearchParams();
    visible().forEach((c) => query.append("model", $(c, "select.model").value));
    history.replaceState(null, "", "/playground?" + query.toString());
  }
  function countColumns() {
    const n = visible().length;
    document.getElementById("add-column").disabled = n >= columns.length;
    columns.forEach((c) => { $(c, ".remove-column").disabled = n <= 2; });
  }
  document.getElementById("add-column").addEventListener("click", () => {
    const hidden = columns.find((c) => c.hidden);
    if (hidden) hidden.hidden = false;
    countColumns();
    remember();
  });
  document.getElementById("columns").addEventListener("click", (event) => {
    const button = event.target.closest(".remove-column");
    if (!button || visible().length <= 2) return;
    const column = button.closest(".column");
    column.hidden = true;
    column.parentNode.appendChild(column);  // hidden ones wait at the end
    columns.sort((a, b) => Array.prototype.indexOf.call(a.parentNode.children, a) -
                           Array.prototype.indexOf.call(b.parentNode.children, b));
    countColumns();
    remember();
  });
  document.getElementById("columns").addEventListener("change", (event) => {
    if (event.target.matches("select.model")) remember();
  });

  // ---- sending -------------------------------------------------------------------------------------
  function conversation() {
    const messages = [];
    const system = document.getElementById("system").value;
    if (system.trim()) messages.push({ role: "system", content: system });
    for (const turn of turns.children) {
      messages.push({ role: $(turn, "select").value, content: $(turn, "textarea").value });
    }
    return messages;
  }

  function number(id) {
    const text = document.getElementById(id).value.trim();
    return text === "" ? null : Number(text);
  }

  function reset(column) {
    column.dataset.state = "streaming";
    $(column, "pre.answer").textContent = "";
    for (const cls of ["prompt-tokens", "answer-tokens", "ttft", "latency", "finish"]) {
      $(column, "." + cls).textContent = "—";
    }
    const problem = $(column, ".column-problem");
    problem.hidden = true;
    problem.textContent = "";
  }

  function fail(column, message) {
    const problem = $(column, ".column-problem");
    problem.textContent = message;
    problem.hidden = false;
    column.dataset.state = "error";
  }

  const seconds = (ms) => (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";

  async function errorMessage(response) {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) { /* not JSON: a refusal page, its text is the message */ }
    return text.trim().slice(0, 500) || `HTTP ${response.status}`;
  }

  // one server-sent event's data: a chunk, the usage, an error, or [DONE]
  function take(column, data, started, state) {
    if (data === "[DONE]") { state.done = true; return; }
    let chunk;
    try { chunk = JSON.parse(data); } catch (_) { return; }
    if (chunk.error) { fail(column, chunk.error.message || "The generation failed."); state.failed = true; return; }
    for (const choice of chunk.choices || []) {
      const text = choice.delta && choice.delta.content;
      if (text) {
        if (state.first === null) {
          state.first = performance.now() - started;
          $(column, ".ttft").textContent = seconds(state.first);
        }
        $(column, "pre.answer").appendChild(document.createTextNode(text));
      }
      if (choice.finish_reason) $(column, ".finish").textContent = choice.finish_reason;
    }
    if (chunk.usage) {
      $(column, ".prompt-tokens").textContent = chunk.usage.prompt_tokens.toLocaleString();
      $(column, ".answer-tokens").textContent = chunk.usage.completion_tokens.toLocaleString();
    }
  }

  async function ask(column, body, signal) {
    reset(column);
    const started = performance.now();
    const state = { first: null, done: false, failed: false };
    try {
      const response = await fetch("/playground/chat", {
        method: "POST", signal, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "text/event-stream" },
        body: JSON.stringify(body),
      });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        window.location.assign("/login");
        return;
      }
      if (!response.ok || !(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
        fail(column, await errorMessage(response));
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (data) take(column, data, started, state);
        }
      }
      $(column, ".latency").textContent = seconds(performance.now() - started);
      if (!state.failed) column.dataset.state = state.done ? "done" : "error";
      if (!state.done && !state.failed) fail(column, "The answer stopped before its end.");
    } catch (error) {
      if (error.name === "AbortError") {
        $(column, ".latency").textContent = seconds(performance.now() - started);
        fail(column, "Stopped.");
      } else {
        fail(column, "The request failed: " + error.message);
      }
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formProblem.textContent = "";
    running.forEach((c) => c.abort());
    const shared = {
      messages: conversation(), temperature: number("temperature"), max_tokens: number("max-tokens"),
      seed: number("seed"), json_schema: document.getElementById("json-schema").value,
    };
    if (shared.messages.length === 0) { formProblem.textContent = "Write a message first."; return; }
    const controllers = visible().map(() => new AbortController());
    running = controllers;
    sendButton.disabled = true;
    stopButton.disabled = false;
    await Promise.all(visible().map((column, i) =>
      ask(column, { ...shared, model: $(column, "select.model").value }, controllers[i].signal)));
    if (running === controllers) {
      sendButton.disabled = false;
      stopButton.disabled = true;
      running = [];
    }
  });
  stopButton.addEventListener("click", () => {
    running.forEach((c) => c.abort());
    sendButton.disabled = false;
    stopButton.disabled = true;
  });

  countColumns();
})();
