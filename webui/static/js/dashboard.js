/* Stacked bar chart of the dashboard's per-unit table (chart.js). */
(function () {
  "use strict";
  var canvas = document.getElementById("chart"), source = document.getElementById("chart-data");
  if (!canvas || !source || typeof window.Chart !== "function") { return; }
  var data = JSON.parse(source.textContent);
  var horizontal = data.labels.length > 6 || window.innerWidth < 700;
  if (horizontal) { canvas.parentElement.style.height = Math.max(260, data.labels.length * 34 + 90) + "px"; }
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.series.map(function (s) { return { label: s.label, data: s.data, backgroundColor: s.color, maxBarThickness: 56 }; })
    },
    options: {
      indexAxis: horizontal ? "y" : "x",
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true, ticks: { precision: 0 } }, y: { stacked: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom" } }
    }
  });
})();
