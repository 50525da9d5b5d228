// A small, safe markdown subset rendered straight to DOM nodes (never through innerHTML):
// headings, paragraphs, lists, fenced code, `code`, **bold**, *italic*, and http(s) links.
import { h } from "./dom.js";

export function renderMarkdown(source) {
  const root = h("div", { class: "md" });
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^```/.test(line)) {
      const code = [];
      i += 1;
      while (i < lines.length && !/^```/.test(lines[i])) code.push(lines[i++]);
      i += 1;
      root.append(h("pre", {}, h("code", {}, code.join("\n"))));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = Math.min(5, heading[1].length + 2);
      root.append(inline(h(`h${level}`), heading[2]));
      i += 1;
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d+[.)]\s+/.test(line);
      const list = h(ordered ? "ol" : "ul");
      while (i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) {
        list.append(inline(h("li"), lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, "")));
        i += 1;
      }
      root.append(list);
      continue;
    }
    if (!line.trim()) { i += 1; continue; }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(```|#{1,6}\s|\s*([-*+]|\d+[.)])\s+)/.test(lines[i])) {
      para.push(lines[i++]);
    }
    const p = h("p");
    para.forEach((text, index) => {
      if (index) p.append(h("br"));
      inline(p, text);
    });
    root.append(p);
  }
  return root;
}

const TOKEN = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\((https?:\/\/[^\s)]+)\))/;

function inline(el, text) {
  let rest = text;
  while (rest) {
    const m = TOKEN.exec(rest);
    if (!m) { el.append(rest); break; }
    if (m.index) el.append(rest.slice(0, m.index));
    const tok = m[0];
    if (m[1]) el.append(h("code", {}, tok.slice(1, -1)));
    else if (m[2]) el.append(inline(h("strong"), tok.slice(2, -2)));
    else if (m[3]) el.append(inline(h("em"), tok.slice(1, -1)));
    else if (m[4]) {
      const label = tok.slice(1, tok.indexOf("]("));
      el.append(h("a", { href: m[5], rel: "noopener noreferrer nofollow", target: "_blank" }, label));
    }
    rest = rest.slice(m.index + tok.length);
  }
  return el;
}
