// The console's only script (the CSP allows no inline script): draws charts from data the server
// rendered into the page, and keeps a payment page current while the payment is in flight.
"use strict";

(function () {
  const PALETTE = ["#1f5fbf", "#d97706", "#15803d", "#b91c1c", "#7c3aed", "#0e7490", "#be185d"];
  const POLL_MS = 1500;

  function drawCharts() {
    const canvases = document.querySelectorAll("canvas[data-chart]");
    canvases.forEach(function (canvas) {
      const figure = canvas.closest("figure");
      if (typeof window.Chart === "undefined") {
        const missing = figure && figure.querySelector(".chart-missing");
        if (missing) missing.hidden = false;
        return;
      }
      const spec = JSON.parse(canvas.dataset.chart);
      const datasets = spec.series.map(function (series, index) {
        const colour = PALETTE[index % PALETTE.length];
        return {
          label: series.label,
          // decimal strings from the API, turned into numbers for drawing only
          data: series.values.map(Number),
          backgroundColor: colour,
          borderColor: colour,
          // a supply changes at the moments of its buckets and holds in between
          stepped: spec.stepped ? "before" : false,
          pointRadius: spec.type === "line" ? 2 : undefined,
        };
      });
      const chart = new window.Chart(canvas, {
        type: spec.type,
        data: { labels: spec.labels, datasets: datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          scales: { x: { stacked: !!spec.stacked }, y: { stacked: !!spec.stacked, beginAtZero: spec.type !== "line" } },
          plugins: { legend: { position: "bottom" } },
        },
      });
      canvas.dataset.rendered = String(chart.data.datasets.length);
    });
  }

  function followPayment() {
    const section = document.getElementById("payment");
    if (!section || section.dataset.status !== "initiated") return;
    window.setTimeout(function refresh() {
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("payment");
          const current = document.getElementById("payment");
          if (fresh && current) current.replaceWith(fresh);
          if (fresh && fresh.dataset.status === "initiated") window.setTimeout(refresh, POLL_MS);
        })
        .catch(function () {
          window.setTimeout(refresh, POLL_MS * 4);
        });
    }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    followPayment();
  });
})();
