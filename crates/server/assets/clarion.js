// Shared by every page: API calls carrying the session's CSRF token, a
// status line, and two declarative helpers so pages need little script:
//  - a button with data-api-path (and data-api-method, data-api-body JSON,
//    data-confirm) calls the API, then reloads;
//  - a form with data-api-path sends its fields as JSON, shows errors
//    beside the fields they name, then reloads (or goes to data-next).
"use strict";
const Clarion = {
  csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  },
  async api(method, path, body) {
    const res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": Clarion.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const err = new Error((data && data.error) || res.statusText);
      err.status = res.status;
      err.details = (data && data.details) || [];
      throw err;
    }
    return data;
  },
  flash(message, kind) {
    const f = document.getElementById("flash");
    if (!f) return;
    f.textContent = message;
    f.className = kind || "ok";
  },
  describe(err) {
    return err.message + (err.details && err.details.length ? ": " + err.details.join("; ") : "");
  },
};

document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-api-path]");
  if (!b) return;
  e.preventDefault();
  if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
  const body = b.dataset.apiBody ? JSON.parse(b.dataset.apiBody) : undefined;
  b.disabled = true;
  try {
    await Clarion.api(b.dataset.apiMethod || "POST", b.dataset.apiPath, body);
    Clarion.flash(b.dataset.done || "Done.");
    location.reload();
  } catch (err) {
    Clarion.flash(Clarion.describe(err), "error");
    b.disabled = false;
  }
});

document.addEventListener("submit", async (e) => {
  const f = e.target.closest("form[data-api-path]");
  if (!f) return;
  e.preventDefault();
  f.querySelectorAll(".field-error").forEach((n) => n.remove());
  const body = {};
  new FormData(f).forEach((v, k) => {
    if (k !== "csrf" && v !== "") body[k] = v;
  });
  try {
    const data = await Clarion.api(f.dataset.apiMethod || "POST", f.dataset.apiPath, body);
    if (f.dataset.show && data && data[f.dataset.show]) {
      Clarion.flash(f.dataset.done + " " + data[f.dataset.show]);
      return;
    }
    Clarion.flash(f.dataset.done || "Saved.");
    if (f.dataset.next) location.href = f.dataset.next; else location.reload();
  } catch (err) {
    // "field: message" errors go beside the field they name.
    const m = /^([a-z_]+): (.*)$/.exec(err.message);
    const input = m && f.querySelector(`[name="${m[1]}"]`);
    if (input) {
      const p = document.createElement("p");
      p.className = "field-error";
      p.id = `${input.id || m[1]}-error`;
      p.textContent = m[2];
      input.setAttribute("aria-describedby", p.id);
      input.insertAdjacentElement("afterend", p);
    }
    Clarion.flash(Clarion.describe(err), "error");
  }
});
