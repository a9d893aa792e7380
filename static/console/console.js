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
    if (evt.key === "/") {
      const box = document.querySelector("main [data-search]") || document.querySelector("[data-search]");
      if (box) { evt.preventDefault(); box.focus(); box.select(); }
    } else if (evt.key === "j") {
      focusRow(current + 1);
    } else if (evt.key === "k") {
      focusRow(current - 1);
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
    if (n || (matching && matching.checked)) bar.removeAttribute("data-empty");
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
