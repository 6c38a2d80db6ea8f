// Small DOM helpers shared by the pages: elements, numbers, messages and confirmations.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export const num = (value, digits = 4) =>
  typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";

export const signed = (value, digits = 4) =>
  typeof value === "number" && Number.isFinite(value)
    ? `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(digits)}`
    : "–";

export const when = (iso) => (iso ? String(iso).replace("T", " ").slice(0, 19) : "–");

export function shorten(text, width) {
  const flat = String(text ?? "").replace(/\s+/g, " ").trim();
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 4000);
}

export function errorBox(error) {
  const code = error && error.code ? ` (${error.code})` : "";
  return h("p", { class: "error", role: "alert" }, `${error.message || error}${code}`);
}

export function loading(text = "Loading…") {
  return h("p", { class: "muted", "aria-busy": "true" }, text);
}

// A modal confirmation (<dialog>: Esc or Cancel says no). `extra` nodes go above the buttons;
// resolves to true only for Confirm.
export function confirmDialog(title, text, { confirm = "Confirm", extra = [] } = {}) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  clear(document.getElementById("confirm-extra"), extra);
  document.getElementById("confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

export function table(headers, rows, { caption, className } = {}) {
  return h(
    "div",
    { class: "tablewrap" },
    h(
      "table",
      { class: className },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell)))),
      ),
    ),
  );
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}
