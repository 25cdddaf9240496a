// bridge dash: live updates and the runs table's sort and filter. Written for this project; no library.
// The server renders every page, escaped; this script only swaps in the server's own fragment when the
// board moves (server-sent events), so nothing read from a topic is ever turned into markup here.
"use strict";

(function () {
  const main = document.getElementById("live");
  const state = document.getElementById("live-state");
  if (!main) return;
  let sort = null; // {column, descending}
  let filter = "";
  let inFlight = false;
  let pending = false;

  function fragmentUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    return url.toString();
  }

  function cellValue(row, column, kind) {
    const cell = row.cells[column];
    const text = cell ? cell.textContent.trim() : "";
    if (kind === "text") return text;
    const n = text === "" || text === "-" ? NaN : Number(text);
    if (kind === "number") return Number.isNaN(n) ? -Infinity : n;
    return Number.isNaN(n) ? text : n; // "auto": a column of numbers sorts as numbers
  }

  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function applyTable() {
    const table = main.querySelector("table.sortable");
    if (!table) return;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    if (sort) {
      const th = table.tHead.rows[0].cells[sort.column];
      const kind = th ? th.dataset.sort : "text";
      rows.sort((r1, r2) => {
        const c = compare(cellValue(r1, sort.column, kind), cellValue(r2, sort.column, kind));
        return sort.descending ? -c : c;
      });
      rows.forEach((r) => body.appendChild(r));
      Array.from(table.tHead.rows[0].cells).forEach((cell, i) => {
        cell.classList.toggle("sorted-asc", i === sort.column && !sort.descending);
        cell.classList.toggle("sorted-desc", i === sort.column && sort.descending);
      });
    }
    const q = filter.toLowerCase();
    rows.forEach((r) => {
      r.hidden = q !== "" && !r.textContent.toLowerCase().includes(q);
    });
    const input = main.querySelector("#run-filter");
    if (input && input.value !== filter) input.value = filter;
  }

  main.addEventListener("click", (event) => {
    const th = event.target.closest("table.sortable th[data-sort]");
    if (!th) return;
    const column = th.cellIndex;
    sort = sort && sort.column === column ? { column, descending: !sort.descending } : { column, descending: false };
    applyTable();
  });

  main.addEventListener("input", (event) => {
    if (event.target.id !== "run-filter") return;
    filter = event.target.value;
    applyTable();
  });

  async function refresh() {
    if (inFlight) {
      pending = true;
      return;
    }
    inFlight = true;
    try {
      const response = await fetch(fragmentUrl(), { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const focused = document.activeElement;
        const focusId = focused && main.contains(focused) ? focused.id || focused.name : null;
        const typed = focused && "value" in focused ? focused.value : null;
        main.innerHTML = await response.text();
        main.dataset.version = response.headers.get("X-Board-Version") || main.dataset.version;
        applyTable();
        if (focusId) {
          const again = document.getElementById(focusId) || main.querySelector(`[name="${CSS.escape(focusId)}"]`);
          if (again) {
            if (typed !== null) again.value = typed;
            again.focus();
          }
        }
      }
    } finally {
      inFlight = false;
      if (pending) {
        pending = false;
        window.setTimeout(refresh, 200);
      }
    }
  }

  function connect() {
    const events = new EventSource("/events");
    events.onopen = () => {
      state.textContent = "live";
      state.className = "live-state on";
    };
    events.onmessage = (event) => {
      if (event.data !== main.dataset.version) refresh();
    };
    events.onerror = () => {
      state.textContent = "reconnecting";
      state.className = "live-state off";
    };
  }

  applyTable();
  connect();
})();
