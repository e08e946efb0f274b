// A small Markdown renderer that builds Preact elements, never HTML: text
// from a model is always text, whatever tags it holds. It knows fenced code,
// headings, lists, paragraphs, inline code, bold, italics and http(s) links.
import { h } from 'preact';

const inlineRe = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\((https?:\/\/[^)\s]+)\))/g;

function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(inlineRe)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const s = m[0];
    if (m[1]) out.push(h('code', null, s.slice(1, -1)));
    else if (m[2]) out.push(h('strong', null, s.slice(2, -2)));
    else if (m[3]) out.push(h('em', null, s.slice(1, -1)));
    else if (m[4]) {
      const label = s.slice(1, s.indexOf(']('));
      out.push(h('a', { href: m[5], rel: 'noopener noreferrer nofollow', target: '_blank' }, label));
    }
    last = m.index + s.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function markdown(src) {
  const lines = src.replace(/\r\n/g, '\n').split('\n');
  const blocks = [];
  let para = [];
  let list = null;
  const flushPara = () => {
    if (para.length) blocks.push(h('p', null, inline(para.join(' '))));
    para = [];
  };
  const flushList = () => {
    if (list) blocks.push(h(list.ordered ? 'ol' : 'ul', null, list.items.map((t) => h('li', null, inline(t)))));
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```\s*([\w+-]*)/);
    if (fence) {
      flushPara(); flushList();
      const code = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
      blocks.push(h('pre', null, h('code', { 'data-lang': fence[1] || undefined }, code.join('\n'))));
      continue;
    }
    const head = line.match(/^(#{1,6})\s+(.*)$/);
    if (head) {
      flushPara(); flushList();
      blocks.push(h('h' + Math.min(head[1].length + 2, 6), null, inline(head[2])));
      continue;
    }
    const item = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
    if (item) {
      flushPara();
      const ordered = /\d/.test(item[1]);
      if (!list || list.ordered !== ordered) { flushList(); list = { ordered, items: [] }; }
      list.items.push(item[2]);
      continue;
    }
    if (line.trim() === '') { flushPara(); flushList(); continue; }
    flushList();
    para.push(line.trim());
  }
  flushPara(); flushList();
  return blocks;
}
