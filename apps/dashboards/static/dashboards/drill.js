// A click on a bar or point opens the fact rows behind it: each trace carries their link in customdata.
// Stacked daily charts report every series of the clicked day; the first one with a link is taken.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-plotly-plot").forEach(function (chart) {
    if (typeof chart.on !== "function") return;
    chart.on("plotly_click", function (event) {
      var points = (event && event.points) || [];
      for (var i = 0; i < points.length; i++) {
        var link = points[i].customdata;
        if (typeof link === "string" && link.charAt(0) === "/") {
          window.location.assign(link);
          return;
        }
      }
    });
  });
});
