// Showing a cited text, Markdown or HTML file with the cited passage marked. The file is always
// rendered as text: document HTML is parsed into an inert document only to read its text, never
// inserted into the page.

// The same reading of HTML as the indexer's (ingest/loaders.py `_HtmlText`), so a cited passage is
// found verbatim: headings as Markdown `#` lines, <pre> fenced, navigation and scripts dropped.
const DROP_TAGS = new Set(
  "script style noscript template svg nav aside footer form button select iframe head title".split(" "),
);
const DROP_ROLES = new Set(["navigation", "banner", "contentinfo", "search", "complementary"]);
const DROP_CLASS =
  /\b(nav|navbar|nav-panel|sidebar|sphinxsidebar|related|menu|breadcrumbs?|header|footer|headerlink|copiable-anchor|skip-link)\b/;
const BLOCK_TAGS = new Set(
  "p div section article main ul ol dl table pre blockquote figure figcaption hr body details summary".split(" "),
);
const LINE_TAGS = new Set(["li", "tr", "br", "dt", "dd", "caption"]);

export function isHtml(source, contentType) {
  return /\.html?$/i.test(source) || contentType.includes("text/html");
}

function dropped(element) {
  const tag = element.localName;
  if (DROP_TAGS.has(tag) || DROP_ROLES.has(element.getAttribute("role"))) return true;
  return DROP_CLASS.test(element.getAttribute("class") || "") && !["body", "main", "article"].includes(tag);
}

// The readable text of an HTML document. DOMParser makes an inert document: it runs no script and
// loads nothing; only its text is used.
export function htmlText(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const out = [];
  let pre = 0;
  const lineBreak = (lines) => {
    const tail = out.slice(-4).join("").replace(/ +$/, "");
    const have = tail ? tail.length - tail.replace(/\n+$/, "").length : lines;
    if (have < lines) out.push("\n".repeat(lines - have));
  };
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        let data = child.data;
        if (!pre) {
          data = data.replace(/\s+/g, " ");
          const last = out.length ? out[out.length - 1] : "";
          if (!last || /\s$/.test(last)) data = data.replace(/^\s+/, "");
        }
        if (data) out.push(data);
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE || dropped(child)) continue;
      const tag = child.localName;
      const heading = /^h[1-6]$/.test(tag);
      if (heading) {
        lineBreak(2);
        out.push("#".repeat(Number(tag[1])) + " ");
      } else if (tag === "pre") {
        pre += 1;
        lineBreak(2);
        out.push("```\n");
      } else if (BLOCK_TAGS.has(tag)) lineBreak(2);
      else if (LINE_TAGS.has(tag)) lineBreak(1);
      walk(child);
      if (heading) lineBreak(2);
      else if (tag === "pre") {
        pre -= 1;
        lineBreak(1);
        out.push("```");
        lineBreak(2);
      } else if (BLOCK_TAGS.has(tag)) lineBreak(2);
      else if (LINE_TAGS.has(tag)) lineBreak(1);
      else if (tag === "td" || tag === "th") out.push(" ");
    }
  };
  if (doc.body) walk(doc.body);
  return out.join("").replace(/[ \t]+\n/g, "\n").replace(/\n{3,}/g, "\n\n").trim() + "\n";
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
  // Line by line, without Markdown markers: from the first line found to the last one found after it.
  let first = null;
  let last = null;
  for (const line of passage.split("\n")) {
    const words = line.replace(/^\s*(#{1,6}|[-*+>]|\d+[.)])\s+/, "").split(/\s+/).filter(Boolean).join(" ");
    if (words.length < 4) continue;
    const found = hay.indexOf(words, last ? last[0] : 0);
    if (found < 0) continue;
    if (!first) first = [found, found + words.length];
    last = [found, found + words.length];
  }
  return first ? span(first[0], last[1] - first[0]) : null;
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
