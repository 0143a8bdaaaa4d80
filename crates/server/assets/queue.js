// The queue page's script (see src/pages/queue.rs): "Check now" runs the
// channel's check through the API and writes the answer into the row's
// live cell, without reloading (the rest of the page stays as read).
"use strict";
document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-check]");
  if (!b) return;
  const name = b.dataset.check;
  const out = document.getElementById("check-" + name);
  b.disabled = true;
  if (out) out.textContent = "Checking…";
  try {
    const r = await Clarion.api("POST", "/api/v1/channels/" + encodeURIComponent(name) + "/check");
    if (out) {
      out.textContent = (r.ok ? "OK: " : "Failed (" + r.class + "): ") + r.message;
      out.className = "check-result " + (r.ok ? "ok" : "error");
    }
  } catch (err) {
    if (out) {
      out.textContent = Clarion.describe(err);
      out.className = "check-result error";
    }
  } finally {
    b.disabled = false;
  }
});
