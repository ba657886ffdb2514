/* Progressive enhancement for the forms: everything works without it (the server parses and validates). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var lang = document.documentElement.lang || "vi";
  var sep = lang === "vi" ? "." : ",";

  function digits(text) { return (text || "").replace(/[^0-9-]/g, ""); }
  function group(text) {
    var d = digits(text);
    if (!d || d === "-") { return d; }
    var negative = d.charAt(0) === "-";
    d = d.replace(/-/g, "").replace(/^0+(?=\d)/, "");
    return (negative ? "-" : "") + d.replace(/\B(?=(\d{3})+(?!\d))/g, sep);
  }

  // Money: 1500000 -> 1.500.000 while typing (the server accepts both).
  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.classList && el.classList.contains("money")) {
      var fromEnd = el.value.length - el.selectionEnd;
      el.value = group(el.value);
      var pos = Math.max(0, el.value.length - fromEnd);
      try { el.setSelectionRange(pos, pos); } catch (e) { /* not focusable */ }
      updateSums();
    }
    if (el.classList && el.classList.contains("date")) {
      var v = el.value.replace(/[^0-9/]/g, "");
      if (/^\d{2}$/.test(v) || /^\d{2}\/\d{2}$/.test(v)) {
        if (event.inputType && event.inputType.indexOf("delete") === -1) { v += "/"; }
      }
      el.value = v.slice(0, 10);
    }
  });

  // Repeating rows (e.g. budget line items): add from the <template>, remove, renumber.
  function renumber(box) {
    var rows = box.querySelectorAll(":scope > .rows-list > .row-item");
    rows.forEach(function (row, i) {
      var number = row.querySelector(".row-number");
      if (number) { number.textContent = String(i + 1); }
    });
  }
  function nextIndex(box) {
    var base = box.getAttribute("data-rows") + "/";
    var max = -1;
    box.querySelectorAll("[name^='" + base + "']").forEach(function (el) {
      var rest = el.name.slice(base.length);
      var n = parseInt(rest.split("/")[0], 10);
      if (!isNaN(n) && n > max) { max = n; }
    });
    return max + 1;
  }
  document.addEventListener("click", function (event) {
    var add = event.target.closest(".row-add");
    if (add) {
      var box = add.closest("[data-rows]");
      var tpl = box.querySelector(":scope > template.row-template");
      var form = add.closest("form");
      var placeholder = (form && form.getAttribute("data-row-placeholder")) || "__INDEX__";
      if (box && tpl) {
        event.preventDefault();
        var html = tpl.innerHTML.split(placeholder).join(String(nextIndex(box)));
        box.querySelector(":scope > .rows-list").insertAdjacentHTML("beforeend", html);
        renumber(box);
        var added = box.querySelector(":scope > .rows-list > .row-item:last-child input, :scope > .rows-list > .row-item:last-child textarea");
        if (added) { added.focus(); }
      }
      return;
    }
    var remove = event.target.closest(".row-remove");
    if (remove) {
      var rowBox = remove.closest("[data-rows]");
      remove.closest(".row-item").remove();
      renumber(rowBox);
      updateSums();
      return;
    }
    var confirmer = event.target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Sum of the money column of repeating rows, shown under them ("Tổng: 3.500.000 đ").
  function updateSums() {
    document.querySelectorAll("[data-rows]").forEach(function (box) {
      var inputs = box.querySelectorAll(":scope > .rows-list input.money");
      var out = box.querySelector(":scope > .rows-footer .rows-sum");
      if (!out) { return; }
      if (!inputs.length) { out.textContent = ""; return; }
      var total = 0;
      inputs.forEach(function (el) { var n = parseInt(digits(el.value), 10); if (!isNaN(n)) { total += n; } });
      out.textContent = (lang === "vi" ? "Tổng: " : "Total: ") + group(String(total)) + (lang === "vi" ? " đ" : " VND");
    });
  }
  document.addEventListener("DOMContentLoaded", updateSums);
})();
