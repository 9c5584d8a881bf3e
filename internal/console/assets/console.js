// authzd console: optional helpers. Every page reads and works without them;
// they only filter table rows and ask before destructive forms are sent.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var tables = input.getAttribute("data-filter").split(" ").map(function (id) { return document.getElementById(id); });
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      tables.forEach(function (t) {
        if (!t) { return; }
        t.querySelectorAll("tbody tr").forEach(function (row) {
          var head = row.querySelector("th");
          row.hidden = q !== "" && !(head && head.textContent.toLowerCase().indexOf(q) >= 0);
        });
      });
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
});
