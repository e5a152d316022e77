// wxgate console: the little script the pages need. It is served from the
// console's own origin (the Content-Security-Policy allows no inline
// script) and works the same on pages htmx swaps in.
(function () {
  "use strict";

  // Forms with data-confirm ask before they post (delete, revoke, unbind).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  }, true);

  // Buttons with data-copy copy the named input's value.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-copy]");
    if (!btn) return;
    var input = document.getElementById(btn.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () { btn.textContent = "✓"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  function fmtTime(kind) {
    return function (self, splits) {
      return splits.map(function (s) {
        var d = new Date(s * 1000);
        var hh = String(d.getUTCHours()).padStart(2, "0"), mm = String(d.getUTCMinutes()).padStart(2, "0");
        if (kind === "hours" && d.getUTCHours() === 0) return (d.getUTCMonth() + 1) + "/" + d.getUTCDate();
        return hh + ":" + mm;
      });
    };
  }

  // Draw every chart in root from the JSON block its data-chart names.
  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src) return;
      var data = JSON.parse(src.textContent);
      if (!data.series || !data.series.length) return;
      el.dataset.drawn = "1";
      var kind = el.getAttribute("data-kind");
      var opts = {
        width: Math.max(el.clientWidth, 300),
        height: 260,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [
          { values: fmtTime(kind), grid: { stroke: "#f1f5f9" } },
          { grid: { stroke: "#f1f5f9" }, size: 50 }
        ],
        series: [{ label: data.xlabel }].concat(data.series.map(function (s) {
          return { label: s.label, stroke: s.color, width: 2, fill: s.color + "14", points: { show: false } };
        }))
      };
      var plot = new uPlot(opts, [data.x].concat(data.series.map(function (s) { return s.values; })), el);
      window.addEventListener("resize", function () { plot.setSize({ width: Math.max(el.clientWidth, 300), height: 260 }); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    if (window.htmx) window.htmx.onLoad(drawCharts);
  });
})();
