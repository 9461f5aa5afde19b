// DOM helpers. Everything the page shows is built as elements and text nodes: data never goes
// through an HTML parser (no HTML string is assigned anywhere, and the Content-Security-Policy's
// Trusted Types rule would refuse one).

const SVG_NS = 'http://www.w3.org/2000/svg';

export const $ = (sel, root = document) => root.querySelector(sel);

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false || c === '') continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function setAttrs(el, attrs, svg) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'for' && !svg) {
      el.htmlFor = v;
    } else if (k === 'value' && !svg) {
      el.value = v;
    } else if (k === 'checked' || k === 'selected') {
      el[k] = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

/** An HTML element: h('p', {class: 'x'}, 'text', child, ...). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs, false);
  return append(el, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs, true);
  return append(el, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Says something to screen readers (the page's polite live region). */
export function announce(text) {
  const region = $('#announce');
  if (!region) return;
  region.textContent = '';
  // A new text node after a tick, so the same message twice is read twice.
  setTimeout(() => { region.textContent = text; }, 30);
}

let idCounter = 0;
export function uniqueId(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** An error where a view or a section goes. */
export function errorBox(err, what) {
  const text = err && err.message ? err.message : String(err);
  return h('p', { class: 'error', role: 'alert' }, what ? `${what}: ${text}` : text);
}
