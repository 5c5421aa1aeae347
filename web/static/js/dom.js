// A tiny element builder, so that nothing is ever assembled from HTML strings.

/**
 * h("a", { href: "/x", class: "poster" }, "text", child): attributes set with setAttribute
 * (null/undefined/false skip one), children appended as text or nodes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Show a message in an element with the hidden attribute, or hide it for "". */
export function say(el, message) {
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

/** Set the text of the [data-field=name] element inside root, if there is one. */
export function field(root, name, text) {
  const el = root.querySelector(`[data-field="${name}"]`);
  if (el) el.textContent = text;
}
