// The inbox pages' script (see src/pages/inbox.rs): j/k keys between
// conversations, the labels form (the API wants lists), and live updates
// from /inbox/events that swap the changed part of the page in place.
"use strict";
(() => {
  const rows = () => Array.from(document.querySelectorAll("a.conversation"));

  // j / k move focus between rows; Enter follows the focused link itself.
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (e.key !== "j" && e.key !== "k") return;
    const list = rows();
    if (!list.length) return;
    const at = list.indexOf(document.activeElement);
    const next = e.key === "j" ? Math.min(at + 1, list.length - 1) : Math.max(at - 1, 0);
    list[at < 0 ? 0 : next].focus();
    e.preventDefault();
  });

  // Labels: comma-separated text to the {"add": [...], "remove": [...]} body.
  document.addEventListener("submit", async (e) => {
    const f = e.target.closest("form[data-labels-path]");
    if (!f) return;
    e.preventDefault();
    const split = (name) =>
      (f.elements[name].value || "").split(",").map((s) => s.trim()).filter((s) => s);
    try {
      await Clarion.api("POST", f.dataset.labelsPath, { add: split("add"), remove: split("remove") });
      Clarion.flash("Labels saved.");
      location.reload();
    } catch (err) {
      Clarion.flash(Clarion.describe(err), "error");
    }
  });

  // What to refresh on this page: the list's rows, or a conversation's items.
  const part = document.getElementById("conversation-rows") ? "conversation-rows" : "live";
  if (!document.getElementById(part) || !window.EventSource) return;

  async function refresh() {
    const res = await fetch(location.pathname + location.search, { credentials: "same-origin" });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const fresh = doc.getElementById(part);
    const old = document.getElementById(part);
    if (!fresh || !old) return;
    // Keep focus on the same conversation row (or item) across the swap.
    const focused = document.activeElement;
    const id = focused && focused.closest && old.contains(focused) && focused.dataset.id;
    old.replaceWith(fresh);
    if (id) {
      const again = fresh.querySelector(`a.conversation[data-id="${id}"]`);
      if (again) again.focus();
    }
    const caption = doc.querySelector("#conversations caption");
    const mine = document.querySelector("#conversations caption");
    if (caption && mine) mine.textContent = caption.textContent;
  }

  const source = new EventSource("/inbox/events");
  source.addEventListener("message", () => {
    refresh().catch(() => { /* the next event tries again */ });
  });
})();
