// DOM building without HTML strings. Text always goes in as text nodes or
// textContent, never as markup: nothing from a message can ever run.

const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "open"]);

/**
 * h("button", {class: "x", on: {click}, attrs: {"aria-label": "..."}}, "text", child, [more])
 * Strings become text nodes. `text` sets textContent. Unknown keys become attributes.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "attrs") for (const [k, v] of Object.entries(value)) setAttr(el, k, v);
      else if (PROPS.has(key)) el[key] = value;
      else setAttr(el, key, value);
    }
  }
  append(el, children);
  return el;
}

function setAttr(el, key, value) {
  if (value === undefined || value === null || value === false) return;
  if (/^on/i.test(key)) throw new Error(`refusing inline handler attribute ${key}`);
  el.setAttribute(key, value === true ? "" : String(value));
}

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === true) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set text only when it changed (cheap, no layout churn). */
export function setText(el, text) {
  const value = String(text ?? "");
  if (el.textContent !== value) el.textContent = value;
}

/**
 * Keyed list update: items are rebuilt only when their version changes, and
 * moved only when out of place. `render(item)` returns a fresh element.
 */
export function reconcile(container, items, keyOf, versionOf, render) {
  const old = new Map();
  for (const child of [...container.children]) {
    if (child.__key !== undefined) old.set(child.__key, child);
  }
  let cursor = container.firstElementChild;
  const keep = new Set();
  for (const item of items) {
    const key = keyOf(item);
    const version = versionOf(item);
    keep.add(key);
    let el = old.get(key);
    if (!el || el.__version !== version) {
      const fresh = render(item);
      fresh.__key = key;
      fresh.__version = version;
      if (el) {
        if (el === cursor) cursor = fresh;
        el.replaceWith(fresh);
      }
      el = fresh;
    }
    if (el === cursor) cursor = cursor.nextElementSibling;
    else container.insertBefore(el, cursor);
  }
  for (const [key, el] of old) if (!keep.has(key)) el.remove();
  // anything without a key after the items (placeholders) is left alone
}

/**
 * Run `fn` once, `ms` after the first call since it last ran. Unlike a
 * debounce, a steady stream of calls cannot postpone it forever (a phone
 * receiving events every second still saves them). `flush()` runs it now if
 * a run is due.
 */
export function batched(fn, ms) {
  let timer = null;
  const run = () => {
    clearTimeout(timer);
    timer = null;
    fn();
  };
  const schedule = () => {
    if (timer === null) timer = setTimeout(run, ms);
  };
  schedule.flush = () => {
    if (timer !== null) run();
  };
  return schedule;
}
