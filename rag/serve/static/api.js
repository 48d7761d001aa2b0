// The page's only way to the server: fetch with the session's bearer token, SSE over fetch (EventSource
// can neither POST nor send an Authorization header), and file URLs.

const TOKEN_KEY = "rag-serve-token";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let askToken = async () => null; // set by the page: shows the token dialog, resolves to the typed token

export function onTokenNeeded(ask) {
  askToken = ask;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Relative to the page, so the app also works behind a proxy under a sub-path.
export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), document.baseURI).href;
}

// `/api/files/{path}` for a source as it appears in citations; each segment encoded, `/` kept.
export function fileUrl(source, page) {
  const encoded = source.split("/").map(encodeURIComponent).join("/");
  return apiUrl(`api/files/${encoded}`) + (page ? `#page=${page}` : "");
}

// fetch() that adds the token, and on 401 asks for one (once per session) and retries.
export async function request(path, options = {}) {
  let refused = false;
  for (;;) {
    const headers = new Headers(options.headers || {});
    const current = token();
    if (current) headers.set("Authorization", `Bearer ${current}`);
    const response = await fetch(apiUrl(path), { ...options, headers });
    if (response.status !== 401) return response;
    if (current) {
      sessionStorage.removeItem(TOKEN_KEY);
      refused = true;
    }
    const typed = await askToken(refused);
    if (!typed) throw await errorOf(response);
    sessionStorage.setItem(TOKEN_KEY, typed);
  }
}

// An ApiError with the server's message (`{"error": ...}` or `{"detail": ...}` bodies, else the text).
export async function errorOf(response) {
  const text = await response.text().catch(() => "");
  let body = null;
  let message = text || `${response.status} ${response.statusText}`;
  try {
    body = JSON.parse(text);
    const field = body.error ?? body.detail ?? body.message;
    if (typeof field === "string") message = field;
    else if (field && typeof field.message === "string") message = field.message;
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(response.status, message, body);
}

export async function getJson(path) {
  const response = await request(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// POST a JSON body asking for server-sent events; yields {event, data} with `data` parsed as JSON
// when it is JSON. Throws ApiError for a non-2xx answer (e.g. 409 while a sync runs).
export async function* postEvents(path, body, signal) {
  const response = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("text/event-stream")) {
    // A server that answered with plain JSON: one final event.
    yield { event: "message", data: await response.json() };
    return;
  }
  yield* readEvents(response.body);
}

export async function* readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const parsed = parseEvent(block);
      if (parsed) yield parsed;
    }
    if (done) break;
  }
  const last = parseEvent(buffer);
  if (last) yield last;
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}

// A source file as a blob URL (for opening a PDF when the server wants a token, which a plain
// link cannot send).
export async function fileBlobUrl(source) {
  const response = await request(fileUrl(source));
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

export async function fileText(source) {
  const response = await request(fileUrl(source));
  if (!response.ok) throw await errorOf(response);
  return { text: await response.text(), type: response.headers.get("Content-Type") || "" };
}
