// Draws every chart the page carries as JSON (apps/dashboards/embed.py): no inline script, so the
// Content-Security-Policy can forbid them. Loaded after plotly.js; registers before drill.js, so the charts
// exist when drill.js looks for them.
(function () {
  function draw() {
    document.querySelectorAll("div[data-figure]").forEach(function (element) {
      var figure = JSON.parse(element.getAttribute("data-figure"));
      var config = JSON.parse(element.getAttribute("data-config") || "{}");
      Plotly.newPlot(element, figure.data || [], figure.layout || {}, config);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
