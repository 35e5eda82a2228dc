// Click a header to sort its table (again to reverse; empty cells always last); "details" shows a run's details row,
// which follows its run's row wherever sorting moves it.
(function () {
  "use strict";
  function cellKey(cell, numeric) {
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (raw === "") { return null; }
    if (numeric) { var x = parseFloat(raw); return isNaN(x) ? null : x; }
    return raw.toLowerCase();
  }
  function sortTable(table, column, header) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var numeric = header.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (row) { return !row.classList.contains("detail-row"); });
    var keyed = rows.map(function (row, i) {
      var next = row.nextElementSibling;
      var detail = next && next.classList.contains("detail-row") ? next : null;
      return { row: row, detail: detail, key: cellKey(row.cells[column], numeric), i: i };
    });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        return a.key === b.key ? a.i - b.i : (a.key === null ? 1 : -1);
      }
      if (a.key < b.key) { return ascending ? -1 : 1; }
      if (a.key > b.key) { return ascending ? 1 : -1; }
      return a.i - b.i;
    });
    var fragment = document.createDocumentFragment();
    keyed.forEach(function (k) {
      fragment.appendChild(k.row);
      if (k.detail) { fragment.appendChild(k.detail); }
    });
    body.appendChild(fragment);
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      if (!th.hasAttribute("data-type")) { return; }
      th.addEventListener("click", function () { sortTable(table, column, th); });
    });
    table.addEventListener("click", function (event) {
      var button = event.target.closest("button.toggle");
      if (!button) { return; }
      var detail = button.closest("tr").nextElementSibling;
      var open = detail.hidden;
      detail.hidden = !open;
      button.setAttribute("aria-expanded", open ? "true" : "false");
      button.textContent = open ? "hide" : "details";
    });
  });
}());
