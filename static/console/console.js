/* Taskyard console behaviour on top of htmx. Every page works without this file; it adds
   keyboard shortcuts, shift-click multi-sort, row selection, the confirmation dialog,
   copy buttons and the live refresh. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  const selected = new Map(); // table id -> Set of selected row ids (survives live refreshes)
  const LIVE_KEY = "taskyard-live";
  const LIVE_EVERY_MS = 5000;

  function typing(el) {
    if (!el) return false;
    if (el.tagName === "INPUT") return !/^(checkbox|radio|button|submit)$/.test(el.type);
    return el.isContentEditable || /^(TEXTAREA|SELECT)$/.test(el.tagName);
  }
  function tableSection() { return document.querySelector("[data-table]"); }
  function rows() { return Array.from(document.querySelectorAll("[data-rows] tbody tr")); }
  function announce(text) {
    const region = document.getElementById("announcer");
    if (region) { region.textContent = ""; setTimeout(() => { region.textContent = text; }, 50); }
  }

  // --- keyboard ------------------------------------------------------------------------------
  let current = -1;
  function focusRow(index) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach((r, i) => r.classList.toggle("current", i === current));
    const link = all[current].querySelector("a");
    if (link) link.focus({ preventScroll: false });
  }
  document.addEventListener("keydown", (evt) => {
    if (evt.ctrlKey || evt.metaKey || evt.altKey) return;
    if (typing(evt.target)) {
      if (evt.key === "Escape") evt.target.blur();
      return;
    }
    if (document.querySelector("dialog[open]")) return; // a dialog has the keyboard
    if (evt.key === "/") {
      const box = document.getElementById("global-search") || document.querySelector("[data-search]");
      if (box) { evt.preventDefault(); box.focus(); box.select(); }
    } else if (evt.key === "j" || (evt.key === "ArrowDown" && rows().length)) {
      evt.preventDefault();
      focusRow(current + 1);
    } else if (evt.key === "k" || (evt.key === "ArrowUp" && rows().length)) {
      evt.preventDefault();
      focusRow(current - 1);
    } else if (ROW_ACTION_KEYS[evt.key]) {
      actOnRows(ROW_ACTION_KEYS[evt.key]);
    } else if (evt.key === "b") {
      goToBulkBar();
    } else if (evt.key === "n" || evt.key === "p") {
      const link = document.querySelector(`[data-table] .pager a[rel=${evt.key === "n" ? "next" : "prev"}]`);
      if (link) link.click();
      else announce(evt.key === "n" ? "This is the last page" : "This is the first page");
    } else if (evt.key === "x" && current >= 0) {
      const box = rows()[current] && rows()[current].querySelector("input[type=checkbox]");
      if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); }
    } else if (evt.key === "Enter" && current >= 0 && document.activeElement === document.body) {
      const href = rows()[current] && rows()[current].dataset.href;
      if (href) window.location.href = href;
    } else if (evt.key === "?") {
      const help = document.getElementById("help");
      if (help && !help.open) help.showModal();
    }
  });
  // r / s / u: the action on the selected rows (the bulk bar's button), else on the current
  // row (its row menu's button); either way the server answers with the usual confirmation.
  const ROW_ACTION_KEYS = { r: "set_retries", s: "suspend", u: "unlock" };
  function actOnRows(action) {
    const section = tableSection();
    if (!section) return;
    const checked = section.querySelectorAll("tbody input[name=ids]:checked").length;
    const matching = section.querySelector("[data-scope-matching]");
    let button = null;
    if (checked || (matching && matching.checked)) {
      button = section.querySelector(`[data-bulkbar] button[name=action][value="${action}"]`);
    } else if (current >= 0 && rows()[current]) {
      const id = rows()[current].dataset.id;
      button = rows()[current].querySelector(`button[name=row_action][value="${action}:${CSS.escape(id)}"]`);
    }
    if (button) button.click();
    else announce(checked || current >= 0 ? "You may not do that here" : "Pick a row first: j / k moves, x selects");
  }
  function goToBulkBar() {
    const section = tableSection();
    const bar = section && section.querySelector("[data-bulkbar]");
    if (!bar) return;
    bar.dataset.open = "1"; // shown even with nothing selected: "all matching" is one choice
    refreshBar(section);
    const target = section.querySelector("tbody input[name=ids]:checked")
      ? bar.querySelector("button[name=action]")
      : bar.querySelector("[data-scope-matching]") || bar.querySelector("button[name=action]");
    if (target) { target.focus(); bar.scrollIntoView({ block: "nearest" }); }
  }
  document.addEventListener("click", (evt) => {
    const trigger = evt.target.closest("[data-show-help]");
    if (trigger) document.getElementById("help").showModal();
  });

  // --- shift-click: add a column as a further sort key --------------------------------------
  document.addEventListener("click", (evt) => {
    const link = evt.target.closest("th a[data-add-href]");
    if (!link || !evt.shiftKey) return;
    evt.preventDefault();
    evt.stopPropagation(); // capture phase: htmx's own handler on the link never sees it
    const url = link.dataset.addHref;
    const section = link.closest("[data-table]");
    htmx.ajax("GET", url, { target: "#" + section.id, swap: "outerHTML" }).then(() => {
      history.pushState({ htmx: true }, "", url);
    });
  }, true);

  // --- selection and the bulk bar ------------------------------------------------------------
  function selectionFor(section) {
    if (!selected.has(section.id)) selected.set(section.id, new Set());
    return selected.get(section.id);
  }
  function refreshBar(section) {
    if (!section) return;
    const bar = section.querySelector("[data-bulkbar]");
    if (!bar) return;
    const matching = bar.querySelector("[data-scope-matching]");
    const n = section.querySelectorAll("tbody input[name=ids]:checked").length;
    bar.querySelector("[data-selected-count]").textContent = String(n);
    if (n || (matching && matching.checked) || bar.dataset.open) bar.removeAttribute("data-empty");
    else bar.setAttribute("data-empty", "");
    const all = section.querySelector("[data-select-all]");
    const boxes = section.querySelectorAll("tbody input[name=ids]");
    if (all) all.checked = boxes.length > 0 && n === boxes.length;
  }
  let lastClicked = null;
  document.addEventListener("click", (evt) => {
    const box = evt.target.closest("tbody input[name=ids]");
    if (!box) return;
    const section = box.closest("[data-table]");
    const boxes = Array.from(section.querySelectorAll("tbody input[name=ids]"));
    if (evt.shiftKey && lastClicked && boxes.includes(lastClicked)) {
      const [a, b] = [boxes.indexOf(lastClicked), boxes.indexOf(box)].sort((x, y) => x - y);
      boxes.slice(a, b + 1).forEach((other) => {
        other.checked = box.checked;
        other.dispatchEvent(new Event("change", { bubbles: true }));
      });
    }
    lastClicked = box;
  });
  document.addEventListener("change", (evt) => {
    const section = evt.target.closest("[data-table]");
    if (!section) return;
    const set = selectionFor(section);
    if (evt.target.matches("[data-select-all]")) {
      section.querySelectorAll("tbody input[name=ids]").forEach((box) => {
        box.checked = evt.target.checked;
        if (box.checked) set.add(box.value); else set.delete(box.value);
      });
    } else if (evt.target.matches("tbody input[name=ids]")) {
      if (evt.target.checked) set.add(evt.target.value); else set.delete(evt.target.value);
    }
    refreshBar(section);
  });

  // --- filter forms: keep the URL clean (no empty parameters) --------------------------------
  document.addEventListener("htmx:configRequest", (evt) => {
    if (evt.detail.verb !== "get" || !evt.detail.formData) return;
    const data = evt.detail.formData;
    const keys = new Set(Array.from(data.keys()));
    keys.forEach((key) => {
      const values = data.getAll(key).filter((v) => v !== "");
      data.delete(key);
      values.forEach((v) => data.append(key, v));
    });
  });

  // --- swaps: keep selection, scroll and the live switch; announce changes ------------------
  let before = null;
  document.addEventListener("htmx:beforeSwap", (evt) => {
    const section = evt.detail.target && evt.detail.target.closest && evt.detail.target.closest("[data-table]");
    if (!section) { before = null; return; }
    const wrap = section.querySelector(".table-wrap");
    before = {
      id: section.id,
      scroll: wrap ? wrap.scrollTop : 0,
      versions: new Map(Array.from(section.querySelectorAll("tbody tr[data-id]")).map((r) => [r.dataset.id, r.dataset.version])),
      live: evt.detail.requestConfig && evt.detail.requestConfig.headers && evt.detail.requestConfig.headers["X-Taskyard-Live"],
    };
  });
  document.addEventListener("htmx:afterSwap", (evt) => {
    const slot = evt.detail.target;
    if (slot && slot.id === "confirm-slot") {
      const dialog = slot.querySelector("dialog");
      if (dialog) { dialog.close(); dialog.showModal(); }
      return;
    }
    const section = tableSection();
    if (!section) return;
    current = -1;
    const set = selectionFor(section);
    section.querySelectorAll("tbody input[name=ids]").forEach((box) => { box.checked = set.has(box.value); });
    refreshBar(section);
    const live = section.querySelector("[data-live]");
    if (live) live.checked = sessionStorage.getItem(LIVE_KEY) === "1";
    if (before && before.id === section.id) {
      const wrap = section.querySelector(".table-wrap");
      if (wrap && before.live) wrap.scrollTop = before.scroll;
      if (before.live) {
        let added = 0, changed = 0;
        section.querySelectorAll("tbody tr[data-id]").forEach((r) => {
          if (!before.versions.has(r.dataset.id)) added += 1;
          else if (before.versions.get(r.dataset.id) !== r.dataset.version) changed += 1;
        });
        if (added || changed) announce(`${added} new row${added === 1 ? "" : "s"}, ${changed} changed`);
      }
    }
  });

  // --- confirmation dialog: cancel closes it -------------------------------------------------
  document.addEventListener("click", (evt) => {
    const cancel = evt.target.closest("dialog [data-cancel]");
    if (!cancel) return;
    evt.preventDefault();
    cancel.closest("dialog").close();
  });

  // A button that asks before it posts (cancelling a batch); without JS it simply posts.
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("[data-confirm-click]");
    if (button && !window.confirm(button.dataset.confirmClick)) evt.preventDefault();
  });

  // A confirmed action answers with its result or its batch's page: no double submit meanwhile.
  document.addEventListener("submit", (evt) => {
    const form = evt.target;
    if (!form.closest("[data-confirm]")) return;
    const button = form.querySelector("button[type=submit]");
    if (!button) return;
    button.disabled = true;
    button.textContent = form.querySelector("[data-batch]") ? "Starting the batch…" : "Working…";
    form.setAttribute("aria-busy", "true");
    announce("Working on it");
  });

  // --- row menus: one open at a time; scrolling, Escape or a click elsewhere closes them ----
  function closeMenus(except) {
    document.querySelectorAll("details.rowmenu[open], details.usermenu[open]").forEach((menu) => {
      if (menu !== except) menu.removeAttribute("open");
    });
  }
  document.addEventListener("click", (evt) => closeMenus(evt.target.closest("details")));
  document.addEventListener("scroll", () => closeMenus(null), true);
  document.addEventListener("keydown", (evt) => { if (evt.key === "Escape") closeMenus(null); });

  // --- copy buttons ---------------------------------------------------------------------------
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.innerText.trim()).then(() => {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });

  // --- live refresh ---------------------------------------------------------------------------
  document.addEventListener("change", (evt) => {
    if (!evt.target.matches("[data-live]")) return;
    sessionStorage.setItem(LIVE_KEY, evt.target.checked ? "1" : "0");
    announce(evt.target.checked ? "Live refresh on" : "Live refresh off");
  });
  setInterval(() => {
    const section = tableSection();
    if (!section || sessionStorage.getItem(LIVE_KEY) !== "1") return;
    if (document.visibilityState !== "visible") return; // paused while the tab is hidden
    if (document.querySelector("dialog[open]")) return; // never under an open dialog
    if (section.contains(document.activeElement) && typing(document.activeElement)) return;
    htmx.ajax("GET", window.location.pathname + window.location.search, {
      target: "#" + section.id, swap: "outerHTML", headers: { "X-Taskyard-Live": "1" },
    });
  }, LIVE_EVERY_MS);

  document.addEventListener("DOMContentLoaded", () => {
    const section = tableSection();
    if (section) {
      const live = section.querySelector("[data-live]");
      if (live) live.checked = sessionStorage.getItem(LIVE_KEY) === "1";
      refreshBar(section);
    }
  });
})();

/* --- overview self-refresh (console/overview.py, templates/console/overview.html) -------------
   #overview-body carries its URL and interval; it is fetched again (the partial only) while the
   tab is visible, at once when the tab becomes visible again, and never while it is hidden. */
(() => {
  let timer = null;
  function body() { return document.querySelector("#overview-body[data-refresh-every]"); }
  function refresh() {
    const el = body();
    if (!el || document.visibilityState !== "visible") return;
    if (document.querySelector("dialog[open]")) return;
    htmx.ajax("GET", el.dataset.refreshUrl, { target: "#overview-body", swap: "outerHTML" });
  }
  function schedule() {
    if (timer) clearInterval(timer);
    timer = null;
    const el = body();
    if (!el || document.visibilityState !== "visible") return;
    const seconds = Math.max(1, Number(el.dataset.refreshEvery) || 15);
    timer = setInterval(refresh, seconds * 1000);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
    schedule();
  });
  document.addEventListener("DOMContentLoaded", schedule);
})();

/* Copyable ids, the phone menu: small enhancements on top of the page (no JS: the id text is
   still whole and selectable, the navigation is still a list of links). */
(function () {
  "use strict";
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("[data-copy-text]");
    if (!button) return;
    evt.preventDefault();
    copyText(button.dataset.copyText).then(() => {
      button.classList.add("copied");
      button.setAttribute("aria-label", "Copied");
      const region = document.getElementById("announcer");
      if (region) region.textContent = "Copied " + button.dataset.copyText;
      setTimeout(() => { button.classList.remove("copied"); button.setAttribute("aria-label", "Copy " + button.dataset.copyText); }, 1500);
    }).catch(() => {});
  });
  document.addEventListener("click", (evt) => {
    const toggle = evt.target.closest("[data-nav-toggle]");
    if (!toggle) return;
    const open = document.body.classList.toggle("nav-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
