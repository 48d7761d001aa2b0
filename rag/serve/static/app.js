// The page: asking (streamed answers, citations, chat history, filters), opening sources, the index
// status and sync. Talks to the server only through api.js.

import { ApiError, fileBlobUrl, fileText, fileUrl, getJson, onTokenNeeded, postEvents, token } from "./api.js";
import { fillLanguageSelect, pickLanguage, setLanguage, t, tr } from "./i18n.js";
import { htmlText, isHtml, renderMarked } from "./viewer.js";

const $ = (id) => document.getElementById(id);
// The citation markers rag.answer recognises: [1], [1, 2], [1-3], 【1】, full-width brackets.
const CITE_RE = /[[【［]\s*(\d{1,3}(?:\s*[,，、\-–~]\s*\d{1,3})*)\s*[\]】］]/g;

const state = {
  history: [], // chat mode: [{role, content}, ...] of earlier turns
  asking: false,
  syncing: false,
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Untranslated text (the server's own words), or none: the node no longer follows language switches.
function plainText(node, text = "") {
  node.textContent = text;
  delete node.dataset.i18n;
  delete node.dataset.i18nParams;
}

function errorText(error) {
  if (error instanceof ApiError) return t("error", { message: error.message });
  return t("network_error", { message: error.message || String(error) });
}

// -- views -------------------------------------------------------------------------------------

function showView() {
  const view = location.hash === "#index" ? "index" : "ask";
  $("ask-view").hidden = view !== "ask";
  $("index-view").hidden = view !== "index";
  for (const name of ["ask", "index"]) {
    const link = $(`nav-${name}`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "index") loadStatus();
}

// -- the token dialog --------------------------------------------------------------------------

function askForToken(refused) {
  const dialog = $("token-dialog");
  const input = $("token-input");
  $("token-wrong").hidden = !refused;
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(input.value.trim() || null), { once: true });
    dialog.showModal();
    input.focus();
  });
}

// -- asking ------------------------------------------------------------------------------------

function askBody(question) {
  const body = { question };
  const path = $("path-filter").value.trim();
  const type = $("type-filter").value;
  if (path) body.path = path;
  if (type) body.type = type;
  if ($("chat-mode").checked && state.history.length) body.history = state.history.slice();
  return body;
}

// The text of a `piece` event: {"text": "..."}.
function pieceText(data) {
  return typeof data === "string" ? data : (data && data.text) || "";
}

function streamError(data) {
  const message = (data && (data.error || data.message)) || JSON.stringify(data);
  return new ApiError((data && data.status) || 500, message, data);
}

// Citations for every passage sent before the answer (the `contexts` event), by number.
function contextNumbers(contexts) {
  return new Map(
    contexts.map((context, index) => {
      const n = context.n || index + 1;
      const citation = { n, source: context.source, page: context.page, heading: context.heading, snippet: "" };
      return [n, { citation, context }];
    }),
  );
}

// A server that answered with plain JSON sends the answer object as its only "event".
function isFinalAnswer(data) {
  return data && typeof data === "object" && typeof data.answer === "string" && Array.isArray(data.citations);
}

async function ask(event) {
  event.preventDefault();
  const input = $("question");
  const question = input.value.trim();
  if (!question) {
    tr($("ask-status"), "empty_question");
    input.focus();
    return;
  }
  if (state.asking) return;
  state.asking = true;
  $("ask-button").disabled = true;
  tr($("ask-status"), "asking");
  const body = askBody(question);
  if (!$("chat-mode").checked) clearConversation(false);

  const turn = el("li", "turn");
  const asked = el("p", "asked");
  asked.append(tr(el("span", "label"), "you_asked"), el("span", "question-text", question));
  const answer = el("div", "answer");
  answer.setAttribute("aria-live", "polite");
  answer.setAttribute("aria-busy", "true");
  answer.append(tr(el("h2", "label"), "answer"));
  const text = el("p", "answer-text");
  text.dir = "auto";
  answer.append(text);
  turn.append(asked, answer);
  $("conversation").append(turn);
  input.value = "";

  let final = null;
  let contexts = [];
  let streamed = "";
  try {
    for await (const { event: name, data } of postEvents("api/ask", body)) {
      if (name === "error") throw streamError(data);
      if (name === "contexts") {
        contexts = data.contexts || [];
      } else if (name === "answer" || isFinalAnswer(data)) {
        final = data;
      } else {
        // While the answer streams, [n] already links to the passage it names.
        streamed += pieceText(data);
        linkedAnswer(text, streamed, contextNumbers(contexts));
      }
    }
    if (!final) throw new ApiError(500, "the answer stream ended without a final answer", null);
    renderAnswer(answer, text, final);
    if ($("chat-mode").checked) {
      state.history.push({ role: "user", content: question }, { role: "assistant", content: final.answer });
    }
    plainText($("ask-status"));
  } catch (error) {
    const problem = el("p", "error", errorText(error));
    problem.setAttribute("role", "alert");
    answer.append(problem);
    plainText($("ask-status"));
  } finally {
    answer.setAttribute("aria-busy", "false");
    state.asking = false;
    $("ask-button").disabled = false;
    input.focus();
  }
}

function clearConversation(announce) {
  state.history = [];
  $("conversation").replaceChildren();
  if (announce) tr($("ask-status"), "conversation_cleared");
}

function fileLabel(citation) {
  return citation.page ? `${citation.source} (${t("page_n", { page: citation.page })})` : citation.source;
}

function citationLink(citation, context, label) {
  const link = el("a", "cite", label);
  link.href = fileUrl(citation.source, citation.page);
  link.target = "_blank";
  link.rel = "noopener";
  link.dataset.n = citation.n;
  const described = { n: citation.n, file: citation.source + (citation.page ? ` #${citation.page}` : "") };
  tr(link, "open_citation", described, "title");
  // A bare "2" in the answer says little to a screen reader: name the source it opens.
  if (/^\d+$/.test(label)) tr(link, "open_citation", described, "aria-label");
  link.addEventListener("click", (event) => openCitation(event, citation, context, link));
  return link;
}

// The answer text with each cited [n] made a link to its source.
function linkedAnswer(container, answer, byNumber) {
  container.replaceChildren();
  let last = 0;
  for (const match of answer.matchAll(CITE_RE)) {
    container.append(answer.slice(last, match.index));
    const whole = match[0];
    const inner = match[1];
    const open = whole.slice(0, whole.indexOf(inner));
    container.append(open);
    for (const part of inner.split(/(\d+)/)) {
      const cited = /^\d+$/.test(part) ? byNumber.get(Number(part)) : undefined;
      container.append(cited ? citationLink(cited.citation, cited.context, part) : part);
    }
    container.append(whole.slice(open.length + inner.length));
    last = match.index + whole.length;
  }
  container.append(answer.slice(last));
}

function renderAnswer(answer, text, final) {
  const contexts = final.contexts || [];
  const byNumber = new Map(final.citations.map((c) => [c.n, { citation: c, context: contexts[c.n - 1] }]));
  linkedAnswer(text, final.answer, byNumber);

  if (final.warnings && final.warnings.length) {
    const box = el("div", "warnings");
    box.setAttribute("role", "alert");
    box.append(tr(el("h3", "label"), "warnings"));
    const list = el("ul");
    for (const warning of final.warnings) list.append(el("li", "", warning));
    box.append(list);
    answer.append(box);
  }

  const sources = el("section", "sources");
  sources.append(tr(el("h3", "label"), "sources"));
  if (!final.citations.length) {
    sources.append(tr(el("p", "muted"), "no_sources"));
  } else {
    const list = el("ol", "source-list");
    for (const citation of final.citations) {
      const context = contexts[citation.n - 1];
      const item = el("li", "source");
      const head = el("div", "source-head");
      head.append(el("span", "source-n", `[${citation.n}]`), citationLink(citation, context, citation.source));
      if (citation.page) head.append(tr(el("span", "source-page"), "page_n", { page: citation.page }));
      if (context && typeof context.score === "number") {
        head.append(tr(el("span", "source-score"), "score", { score: context.score.toFixed(3) }));
      }
      item.append(head);
      if (citation.heading) item.append(el("div", "source-heading", citation.heading));
      const snippet = el("blockquote", "source-snippet", citation.snippet);
      snippet.dir = "auto";
      item.append(snippet);
      list.append(item);
    }
    sources.append(list);
  }
  answer.append(sources);

  const timings = final.timings || {};
  if (final.model) {
    const seconds = (value) => (typeof value === "number" ? value.toFixed(2) : "—");
    answer.append(
      tr(el("p", "meta"), "answer_meta", {
        model: final.model,
        first: seconds(timings.first_token),
        total: seconds(timings.total),
      }),
    );
  }
}

// -- opening a source --------------------------------------------------------------------------

async function openCitation(event, citation, context, link) {
  if (/\.pdf$/i.test(citation.source)) {
    // A plain link opens the browser's PDF viewer at #page=N; with a token, fetch it (a link cannot
    // send the Authorization header) and open the blob at the same page.
    if (!token()) return;
    event.preventDefault();
    const win = window.open("", "_blank");
    try {
      const url = await fileBlobUrl(citation.source);
      const target = url + (citation.page ? `#page=${citation.page}` : "");
      if (win) win.location.href = target;
      else window.open(target, "_blank"); // the blank tab was blocked: try once more, keeping this page
    } catch (error) {
      if (win) win.close();
      showViewerError(citation, error, link);
    }
    return;
  }
  event.preventDefault();
  const dialog = $("viewer");
  dialog.returnFocus = link;
  $("viewer-title").textContent = fileLabel(citation);
  tr($("viewer-message"), "viewer_loading", { file: citation.source });
  $("viewer-text").replaceChildren();
  if (!dialog.open) dialog.showModal();
  try {
    const { text, type } = await fileText(citation.source);
    const shown = isHtml(citation.source, type) ? htmlText(text) : text;
    const passage = (context && context.text) || citation.snippet;
    const mark = renderMarked($("viewer-text"), shown, passage) || renderMarked($("viewer-text"), shown, citation.snippet);
    if (mark) {
      tr(mark, "viewer_passage", null, "title");
      plainText($("viewer-message"));
      mark.scrollIntoView({ block: "center" });
    } else {
      tr($("viewer-message"), "viewer_not_found");
    }
  } catch (error) {
    showViewerError(citation, error, link);
  }
}

function showViewerError(citation, error, link) {
  const dialog = $("viewer");
  dialog.returnFocus = link;
  $("viewer-title").textContent = fileLabel(citation);
  $("viewer-text").replaceChildren();
  tr($("viewer-message"), "viewer_failed", { file: citation.source, message: error.message || String(error) });
  if (!dialog.open) dialog.showModal();
}

// -- the index ---------------------------------------------------------------------------------

function statusRow(list, key, value) {
  const term = tr(el("dt"), key);
  const detail = el("dd", "", value === undefined || value === null || value === "" ? t("status_none") : String(value));
  list.append(term, detail);
}

function fingerprintText(fingerprint) {
  if (!fingerprint || typeof fingerprint !== "object") return fingerprint;
  return Object.entries(fingerprint)
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("\n");
}

async function loadStatus() {
  const message = $("status-message");
  tr(message, "status_loading");
  try {
    const status = await getJson("api/status");
    const list = $("status-list");
    list.replaceChildren();
    const fingerprint = status.fingerprint || {};
    statusRow(list, "status_files", status.files);
    statusRow(list, "status_chunks", status.chunks);
    statusRow(list, "status_model", fingerprint.embed_model);
    statusRow(list, "status_chat_model", status.model);
    statusRow(list, "status_collection", status.collection);
    statusRow(list, "status_root", status.root);
    statusRow(list, "status_fingerprint", fingerprintText(status.fingerprint));
    const skipped = $("skipped-list");
    skipped.replaceChildren();
    for (const skip of status.skipped || []) {
      const item = el("li");
      item.append(el("code", "", skip.path), " — ", el("span", "", skip.reason));
      skipped.append(item);
    }
    if (!skipped.children.length) skipped.append(tr(el("li", "muted"), "status_no_skipped"));
    if (status.indexed === false && status.error) {
      plainText(message, status.error); // the server's one line naming the fix (run rag index PATH)
    } else if (status.syncing) {
      tr(message, "status_syncing");
    } else {
      plainText(message);
    }
  } catch (error) {
    plainText(message, errorText(error));
  }
}

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return t("eta_unknown");
  const whole = Math.round(seconds);
  if (whole < 60) return t("eta_seconds", { s: whole });
  return t("eta_minutes", { m: Math.floor(whole / 60), s: whole % 60 });
}

function showProgress(progress) {
  const done = progress.files_done || 0;
  const total = progress.files_total || 0;
  const bar = $("sync-bar");
  bar.hidden = false;
  bar.max = Math.max(total, 1);
  bar.value = total ? done : 0;
  const percent = typeof progress.percent === "number" ? progress.percent : total ? (100 * done) / total : 0;
  $("sync-percent").textContent = `${Math.floor(percent)}%`;
  const eta = typeof progress.eta === "number" ? progress.eta : NaN;
  tr($("sync-message"), "sync_progress", { done, total, chunks: progress.chunks || 0, eta: duration(eta) });
}

function showSyncDone(report) {
  const bar = $("sync-bar");
  bar.hidden = false;
  bar.max = 1;
  bar.value = 1;
  $("sync-percent").textContent = "100%";
  const count = (key) => (Array.isArray(report[key]) ? report[key].length : Number(report[key]) || 0);
  tr($("sync-message"), "sync_done", {
    added: count("added"),
    updated: count("updated"),
    unchanged: count("unchanged"),
    removed: count("removed"),
    skipped: count("skipped"),
  });
}

async function sync() {
  const notice = $("sync-busy");
  notice.hidden = true;
  if (state.syncing) {
    // This page's own sync is still running: say so at once (the server would answer 409 too).
    notice.hidden = false;
    return;
  }
  state.syncing = true;
  tr($("sync-message"), "sync_starting");
  try {
    let report = null;
    for await (const { event: name, data } of postEvents("api/index", {})) {
      if (name === "error") throw streamError(data);
      if (name === "progress") showProgress(data);
      else if (name === "done") report = data;
    }
    showSyncDone(report || {});
    notice.hidden = true; // the sync that made a second click wait is over
    loadStatus();
  } catch (error) {
    const busy = error instanceof ApiError && error.status === 409 && error.body &&
      ["SyncRunning", "IndexLocked"].includes(error.body.type);
    if (busy) {
      notice.hidden = false;
      plainText($("sync-message"));
    } else {
      tr($("sync-message"), "sync_failed", { message: error.message || String(error) });
    }
  } finally {
    state.syncing = false;
  }
}

// -- start -------------------------------------------------------------------------------------

function start() {
  setLanguage(pickLanguage(), false);
  fillLanguageSelect($("language"));
  $("language").addEventListener("change", (event) => setLanguage(event.target.value, true));
  onTokenNeeded(askForToken);

  $("ask-form").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition (Chinese input) is not a send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("new-conversation").addEventListener("click", () => {
    clearConversation(true);
    $("question").focus();
  });

  const viewer = $("viewer");
  $("viewer-close").addEventListener("click", () => viewer.close());
  viewer.addEventListener("close", () => viewer.returnFocus?.focus());

  $("status-refresh").addEventListener("click", loadStatus);
  $("sync-button").addEventListener("click", sync);

  window.addEventListener("hashchange", showView);
  showView();
  document.body.dataset.ready = "true"; // for tests: the module ran and wired the page
}

start();
