// The compose page's script (see src/pages/compose.rs): live previews per
// channel through POST /api/v1/posts:preview (which stores nothing), media
// upload through POST /api/v1/media, and the post created through
// POST /api/v1/posts, the API's one write path.
"use strict";
(() => {
  const form = document.getElementById("compose");
  if (!form) return; // a viewer sees a notice instead
  const $ = (id) => document.getElementById(id);
  const previews = $("previews");
  const status = $("preview-status");
  const media = []; // uploaded files: {path, alt}
  let timer = null;
  let asked = 0; // answers to older previews are dropped

  const selectedChannels = () =>
    [...form.querySelectorAll("input[name=channels]:checked")].map((c) => c.value);

  // The variables as an object, or an error message.
  function readVars() {
    const text = $("vars").value.trim();
    if (text === "") return { vars: {} };
    try {
      const v = JSON.parse(text);
      if (v === null || typeof v !== "object" || Array.isArray(v)) {
        return { error: 'give a JSON object, like {"product": "Clarion"}' };
      }
      return { vars: v };
    } catch (e) {
      return { error: "not valid JSON: " + e.message };
    }
  }

  // The form as the JSON of POST /api/v1/posts, and the problems found
  // before asking the server.
  function request() {
    const channels = selectedChannels();
    const body = { body: $("body").value, channels };
    const local = [];
    const overrides = {};
    form.querySelectorAll("textarea[data-channel]").forEach((t) => {
      if (channels.includes(t.dataset.channel) && t.value.trim() !== "") {
        overrides[t.dataset.channel] = t.value;
      }
    });
    if (Object.keys(overrides).length) body.overrides = overrides;
    if ($("template").value) body.template = $("template").value;
    const vars = readVars();
    if (vars.error) local.push({ field: "vars", message: vars.error });
    else if (Object.keys(vars.vars).length) body.vars = vars.vars;
    if ($("thread").checked) body.thread = true;
    if (media.length) body.media = media.map((m) => ({ path: m.path, alt: m.alt }));
    const campaign = $("campaign").value.trim();
    if (campaign) body.campaign = campaign;
    const variant = $("variant").value.trim();
    if (variant) body.variant = variant;
    // A wall-clock time: the server reads it in the configured zone.
    if ($("at").value) body.at = $("at").value;
    if ($("draft").checked) body.draft = true;
    if (form.dataset.author) body.author = form.dataset.author;
    return { body, local };
  }

  // The control an error about `field` belongs beside.
  function fieldElement(field) {
    if (field.startsWith("overrides.")) {
      const channel = field.slice("overrides.".length);
      const t = [...form.querySelectorAll("textarea[data-channel]")].find(
        (x) => x.dataset.channel === channel,
      );
      if (t) {
        $("overrides").open = true;
        return t;
      }
      return $("overrides");
    }
    if (field === "overrides") return $("overrides");
    if (field.startsWith("media")) return $("media-file");
    if (field === "channels") return $("channels-field");
    if (field === "variants") return $("variant");
    const byId = { body: "body", vars: "vars", template: "template", at: "at", campaign: "campaign", variant: "variant", draft: "draft", thread: "thread" };
    return byId[field] ? $(byId[field]) : null;
  }

  function clearErrors() {
    form.querySelectorAll("p.field-error").forEach((p) => p.remove());
    form.querySelectorAll("[aria-invalid]").forEach((el) => {
      el.removeAttribute("aria-invalid");
      const ids = (el.getAttribute("aria-describedby") || "")
        .split(" ")
        .filter((id) => id && !id.includes("-error"));
      if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
      else el.removeAttribute("aria-describedby");
    });
  }

  function markInvalid(el, errorId) {
    el.setAttribute("aria-invalid", "true");
    const ids = (el.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (!ids.includes(errorId)) ids.push(errorId);
    el.setAttribute("aria-describedby", ids.join(" "));
  }

  // "field: message" problems beside their fields; the rest in the flash.
  function showFieldErrors(errors) {
    const unplaced = [];
    errors.forEach((e, i) => {
      const el = fieldElement(e.field);
      if (!el) {
        unplaced.push(`${e.field}: ${e.message}`);
        return;
      }
      const p = document.createElement("p");
      p.className = "field-error";
      p.id = `${el.id || "field"}-error-${i}`.replace(/-error-0$/, "-error");
      p.dataset.field = e.field;
      p.textContent = e.message;
      // A fieldset keeps its error inside, after the legend's choices.
      if (el.tagName === "FIELDSET" || el.tagName === "DETAILS") el.appendChild(p);
      else el.insertAdjacentElement("afterend", p);
      if (el.tagName !== "FIELDSET" && el.tagName !== "DETAILS") markInvalid(el, p.id);
    });
    return unplaced;
  }

  // A channel's place among the checkboxes: stable ids across previews.
  const channelIndex = (channel) =>
    [...form.querySelectorAll("input[name=channels]")].findIndex((c) => c.value === channel);

  function channelSection(channel) {
    const index = channelIndex(channel);
    let s = [...previews.querySelectorAll("section.preview")].find(
      (x) => x.dataset.channel === channel,
    );
    if (s) return s;
    s = document.createElement("section");
    s.className = "preview card";
    s.dataset.channel = channel;
    s.id = `preview-${index}`;
    const h = document.createElement("h3");
    h.id = `preview-${index}-heading`;
    h.textContent = channel;
    s.setAttribute("aria-labelledby", h.id);
    s.appendChild(h);
    previews.appendChild(s);
    return s;
  }

  // The text field a channel's text comes from: its override, or the body.
  function textFieldOf(channel) {
    const t = [...form.querySelectorAll("textarea[data-channel]")].find(
      (x) => x.dataset.channel === channel && x.value.trim() !== "",
    );
    return t || $("body");
  }

  function channelError(section, message) {
    const p = document.createElement("p");
    p.className = "field-error";
    p.id = `${section.id}-error`;
    p.setAttribute("role", "alert");
    p.textContent = message;
    section.appendChild(p);
    section.dataset.ok = "false";
    markInvalid(textFieldOf(section.dataset.channel), p.id);
  }

  function renderPreview(answer) {
    clearErrors();
    previews.replaceChildren();
    (answer.channels || []).forEach((c) => {
      const s = channelSection(c.channel);
      s.dataset.ok = c.ok ? "true" : "false";
      const length = document.createElement("p");
      length.className = "length";
      // Text that did not render has no length to show.
      const count = !c.ok && (c.parts || []).length === 0 ? "—" : c.length;
      length.textContent =
        c.limit === null || c.limit === undefined
          ? `${count} ${c.unit} (no limit)`
          : `${count} / ${c.limit} ${c.unit}`;
      if (c.limit !== null && c.limit !== undefined && c.length > c.limit) {
        length.classList.add("error");
      }
      s.appendChild(length);
      const parts = c.parts || [];
      parts.forEach((text, j) => {
        const wrap = document.createElement("div");
        wrap.className = "part";
        wrap.dataset.part = String(j + 1);
        if (parts.length > 1) {
          const label = document.createElement("p");
          label.className = "muted";
          const n = c.message_lengths && c.message_lengths.length === parts.length
            ? ` · ${c.message_lengths[j]}${c.limit ? " / " + c.limit : ""}`
            : "";
          label.textContent = `Part ${j + 1} of ${parts.length}${n}`;
          wrap.appendChild(label);
        }
        const pre = document.createElement("pre");
        pre.className = "text";
        pre.style.whiteSpace = "pre-wrap";
        pre.textContent = text;
        wrap.appendChild(pre);
        s.appendChild(wrap);
      });
      if (!c.ok && c.error) channelError(s, c.error);
    });
    const unplaced = showFieldErrors(answer.errors || []);
    const refused = (answer.channels || []).filter((c) => !c.ok).length;
    const problems = refused + (answer.errors || []).length;
    status.textContent = problems
      ? `${problems} problem(s): see the messages beside the fields and previews.` +
        (unplaced.length ? " " + unplaced.join("; ") : "")
      : `Ready: every channel accepts it.`;
  }

  async function preview() {
    const { body, local } = request();
    if (body.channels.length === 0) {
      clearErrors();
      previews.replaceChildren();
      status.textContent = "Pick a channel to see its preview.";
      showFieldErrors(local);
      return;
    }
    const mine = ++asked;
    try {
      const answer = await Clarion.api("POST", "/api/v1/posts:preview", body);
      if (mine !== asked) return;
      answer.errors = local.concat(answer.errors || []);
      renderPreview(answer);
    } catch (err) {
      if (mine !== asked) return;
      status.textContent = "No preview: " + Clarion.describe(err);
    }
  }

  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(preview, 300);
  }
  form.addEventListener("input", (e) => {
    if (e.target.id !== "media-file" && e.target.id !== "media-alt") schedulePreview();
  });
  form.addEventListener("change", (e) => {
    if (e.target.id !== "media-file" && e.target.id !== "media-alt") schedulePreview();
  });

  // Media: uploaded at once, then named in the post by its path.
  function renderMedia() {
    const list = $("media-list");
    list.replaceChildren();
    media.forEach((m, i) => {
      const li = document.createElement("li");
      li.dataset.path = m.path;
      const name = document.createElement("code");
      name.textContent = m.path;
      const label = document.createElement("label");
      label.htmlFor = `media-alt-${i}`;
      label.textContent = "Alt text";
      const alt = document.createElement("input");
      alt.type = "text";
      alt.id = `media-alt-${i}`;
      alt.className = "media-alt-item";
      alt.value = m.alt;
      alt.addEventListener("input", () => {
        m.alt = alt.value;
        schedulePreview();
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${m.path}`);
      remove.addEventListener("click", () => {
        media.splice(i, 1);
        renderMedia();
        schedulePreview();
      });
      li.append(name, " ", label, alt, " ", remove);
      list.appendChild(li);
    });
  }

  $("media-upload").addEventListener("click", async () => {
    const input = $("media-file");
    form.querySelectorAll('p.field-error[data-field="media"]').forEach((p) => p.remove());
    if (!input.files || input.files.length === 0) {
      showFieldErrors([{ field: "media", message: "choose a file first" }]);
      return;
    }
    const data = new FormData();
    data.append("file", input.files[0]);
    const button = $("media-upload");
    button.disabled = true;
    try {
      const res = await fetch("/api/v1/media", {
        method: "POST",
        credentials: "same-origin",
        body: data,
        headers: { "X-CSRF-Token": Clarion.csrf() },
      });
      let answer = null;
      try { answer = await res.json(); } catch (_) { /* not JSON */ }
      if (!res.ok) {
        showFieldErrors([{ field: "media", message: (answer && answer.error) || res.statusText }]);
        return;
      }
      media.push({ path: answer.path, alt: $("media-alt").value });
      input.value = "";
      $("media-alt").value = "";
      renderMedia();
      Clarion.flash(`Uploaded ${answer.path}.`);
      schedulePreview();
    } finally {
      button.disabled = false;
    }
  });

  $("draft").addEventListener("change", () => {
    $("schedule").textContent = $("draft").checked ? "Save draft" : "Schedule";
  });

  // The day a created post lands on, in the configured zone.
  function dayOf(post) {
    const when = post.scheduled_at || post.requested_at;
    if (!when) {
      if ($("at").value) return $("at").value.slice(0, 10);
      return new Intl.DateTimeFormat("en-CA", { timeZone: form.dataset.zone }).format(new Date());
    }
    try {
      return new Intl.DateTimeFormat("en-CA", {
        timeZone: form.dataset.zone,
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
      }).format(new Date(when));
    } catch (_) {
      return when.slice(0, 10);
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(timer);
    const { body, local } = request();
    if (local.length) {
      clearErrors();
      showFieldErrors(local);
      Clarion.flash("Fix the fields marked before saving.", "error");
      return;
    }
    const button = $("schedule");
    button.disabled = true;
    try {
      const post = await Clarion.api("POST", "/api/v1/posts", body);
      const message =
        post.approval === "pending_approval"
          ? `Post ${post.id} was sent for approval: it waits for an editor before it is scheduled.`
          : body.draft
            ? `Post ${post.id} was saved as a draft.`
            : `Post ${post.id} was scheduled.`;
      Clarion.flash(message);
      try { sessionStorage.setItem("clarion.flash", message); } catch (_) { /* private mode */ }
      setTimeout(() => {
        location.href = "/calendar?date=" + encodeURIComponent(dayOf(post));
      }, 600);
    } catch (err) {
      clearErrors();
      if (err.status === 422 && err.details.length) {
        // "channel `x`: message" goes into that channel's preview.
        const rest = [];
        err.details.forEach((d) => {
          const m = /^channel `([^`]+)`: (.*)$/.exec(d);
          if (m && body.channels.includes(m[1])) {
            channelError(channelSection(m[1]), m[2]);
          } else {
            rest.push(d);
          }
        });
        Clarion.flash(err.message + (rest.length ? ": " + rest.join("; ") : ": see the previews."), "error");
      } else {
        const m = /^([a-z_.\[\]0-9A-Z-]+): (.*)$/.exec(err.message);
        const unplaced = m ? showFieldErrors([{ field: m[1], message: m[2] }]) : [err.message];
        Clarion.flash(unplaced.length ? Clarion.describe(err) : "Not saved: see the marked field.", "error");
      }
      button.disabled = false;
    }
  });
})();
