// The one way the UI builds DOM: elements from a tag, properties and children. Strings become
// text nodes, never HTML, so nothing a user typed is ever parsed as markup. There is no
// innerHTML anywhere in the client. Also `listen`, for event listeners removed together.

/**
 * h('button', {class: 'primary', onclick, 'aria-label': 'Send'}, 'Send')
 * Keys starting with "on" are event listeners; `class`, `for`, `aria-*`, `data-*`, `role`
 * and other attributes are set as attributes; `dataset`/`style` objects are merged.
 * Children: strings, numbers, nodes, arrays of those, or null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key in el && !key.includes('-') && key !== 'list' && key !== 'form') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (same rules as `h`). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * Adds `handlers` ({type: listener}) to `target` (an element, window, document or the client);
 * returns one function that removes them all.
 */
export function listen(target, handlers) {
  const entries = Object.entries(handlers);
  for (const [type, fn] of entries) target.addEventListener(type, fn);
  return () => { for (const [type, fn] of entries) target.removeEventListener(type, fn); };
}
