// Showing a cited text, Markdown or HTML file with the cited passage marked. The file is always
// rendered as text: document HTML is parsed into an inert document only to read its text, never
// inserted into the page.

const BLOCK_TAGS = new Set(
  ("address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 " +
    "header hr li main nav ol p pre section table tr td th ul title").split(" "),
);
const SKIPPED_TAGS = new Set(["script", "style", "noscript", "template", "head"]);

export function isHtml(source, contentType) {
  return /\.html?$/i.test(source) || contentType.includes("text/html");
}

// The readable text of an HTML document (DOMParser runs no scripts and loads nothing).
export function htmlText(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const parts = [];
  const title = doc.querySelector("title");
  if (title && title.textContent.trim()) parts.push(title.textContent.trim(), "\n\n");
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        parts.push(child.data);
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        const tag = child.localName;
        if (SKIPPED_TAGS.has(tag)) continue;
        const block = BLOCK_TAGS.has(tag);
        if (block) parts.push("\n");
        walk(child);
        if (block) parts.push("\n");
      }
    }
  };
  if (doc.body) walk(doc.body);
  return parts.join("").replace(/[ \t]+\n/g, "\n").replace(/\n{3,}/g, "\n\n").trim();
}

// Where `passage` is in `text`, ignoring differences in white space: [start, end) in `text`, or null.
// Falls back to the passage's first and last words when the whole does not match (a loader may
// have joined lines or dropped markup).
export function locate(text, passage) {
  const chars = [];
  const origin = [];
  let space = false;
  for (let i = 0; i < text.length; i++) {
    if (/\s/.test(text[i])) {
      space = chars.length > 0;
    } else {
      if (space) {
        chars.push(" ");
        origin.push(i);
      }
      chars.push(text[i]);
      origin.push(i);
      space = false;
    }
  }
  const hay = chars.join("");
  const needle = passage.replace(/…$/, "").split(/\s+/).filter(Boolean).join(" ");
  if (!needle) return null;
  const span = (from, length) => [origin[from], origin[from + length - 1] + 1];
  let at = hay.indexOf(needle);
  if (at >= 0) return span(at, needle.length);
  for (const size of [80, 40, 20]) {
    if (needle.length <= size) continue;
    const head = needle.slice(0, size);
    at = hay.indexOf(head);
    if (at < 0) continue;
    const tail = needle.slice(-size);
    const tailAt = hay.indexOf(tail, at + size);
    const close = tailAt >= 0 && tailAt - at < needle.length * 2;
    return close ? span(at, tailAt + tail.length - at) : span(at, head.length);
  }
  return null;
}

// Fill `container` with the file text, the located passage wrapped in <mark>; returns the mark or null.
export function renderMarked(container, text, passage) {
  container.replaceChildren();
  const where = passage ? locate(text, passage) : null;
  if (!where) {
    container.append(text);
    return null;
  }
  const mark = document.createElement("mark");
  mark.textContent = text.slice(where[0], where[1]);
  mark.tabIndex = -1;
  container.append(text.slice(0, where[0]), mark, text.slice(where[1]));
  return mark;
}
