// The calendar's moves. A scheduled item can be dragged to another day
// (pointer events, so mouse, touch, pen and WebDriver all work), or
// selected (click or Enter) and given a date in the move form. Either way
// the post keeps its time of day and the API is asked to schedule it there
// (a time without offset is read in the configured zone); the API refuses
// a post already publishing, and the page says why.
"use strict";
(() => {
  const table = document.getElementById("calendar");
  if (!table || table.dataset.writable !== "true") return;
  const form = document.getElementById("move-form");
  const dateInput = document.getElementById("move-date");
  const submit = document.getElementById("move-submit");
  const selectedText = document.getElementById("move-selected");

  async function move(item, date) {
    const at = `${date}T${item.dataset.time}:00`;
    try {
      await Clarion.api("POST", `/api/v1/posts/${item.dataset.postId}/schedule`, { at });
      Clarion.flash(`Post ${item.dataset.postId} moved to ${date} ${item.dataset.time}.`);
      location.reload();
    } catch (err) {
      Clarion.flash(Clarion.describe(err), "error");
    }
  }

  function select(item) {
    table.querySelectorAll(".cal-item.selected").forEach((i) => i.classList.remove("selected"));
    item.classList.add("selected");
    document.getElementById("move-post").value = item.dataset.postId;
    document.getElementById("move-time").value = item.dataset.time;
    dateInput.disabled = false;
    submit.disabled = false;
    dateInput.value = item.closest(".cal-day").dataset.date;
    selectedText.textContent = `Selected: post ${item.dataset.postId} at ${item.dataset.time}.`;
  }

  table.addEventListener("keydown", (e) => {
    const item = e.target.closest(".cal-item[data-movable=true]");
    if (item && (e.key === "Enter" || e.key === " ")) {
      e.preventDefault();
      select(item);
      dateInput.focus();
    }
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const item = table.querySelector(".cal-item.selected");
    if (item && dateInput.value) move(item, dateInput.value);
  });

  let drag = null;
  table.addEventListener("pointerdown", (e) => {
    const item = e.target.closest(".cal-item[data-movable=true]");
    if (!item || e.button !== 0 || e.target.closest("button")) return;
    drag = { item, x: e.clientX, y: e.clientY, moved: false, over: null };
  });
  document.addEventListener("pointermove", (e) => {
    if (!drag) return;
    if (!drag.moved && Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 5) return;
    drag.moved = true;
    drag.item.classList.add("dragging");
    const el = document.elementFromPoint(e.clientX, e.clientY);
    const cell = el && el.closest(".cal-day");
    if (drag.over && drag.over !== cell) drag.over.classList.remove("drop-target");
    if (cell) cell.classList.add("drop-target");
    drag.over = cell;
  });
  document.addEventListener("pointerup", (e) => {
    if (!drag) return;
    const { item, moved } = drag;
    const el = document.elementFromPoint(e.clientX, e.clientY);
    const cell = el && el.closest(".cal-day");
    if (drag.over) drag.over.classList.remove("drop-target");
    item.classList.remove("dragging");
    drag = null;
    if (!moved) {
      select(item);
      return;
    }
    const from = item.closest(".cal-day").dataset.date;
    if (cell && cell.dataset.date !== from) move(item, cell.dataset.date);
  });
})();
