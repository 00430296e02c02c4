// Draws the page's charts with uPlot from its JSON data block (#chart-data): no inline
// script (the Content-Security-Policy allows none). A chart is {id, title, x, series:
// [{label, values, role}], bands: [[from, to]]}: x in epoch seconds; role "value" and
// "estimate" are lines with points, "threshold" a dashed line; bands are shaded (the
// times an alert on the statistic was firing).
(function () {
  "use strict";
  var block = document.getElementById("chart-data");
  if (!block || typeof uPlot === "undefined") { return; }
  var data = JSON.parse(block.textContent);
  var STYLE = {
    value: { stroke: "#1f5fbf", width: 2, dash: null, points: true },
    estimate: { stroke: "#9a4fd0", width: 2, dash: [2, 3], points: true },
    threshold: { stroke: "#d0342c", width: 1.5, dash: [8, 5], points: false }
  };

  function bandsPlugin(bands) {
    return {
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = "rgba(208, 52, 44, 0.10)";
          bands.forEach(function (b) {
            var x0 = u.valToPos(b[0], "x", true);
            var x1 = u.valToPos(b[1], "x", true);
            var left = Math.max(u.bbox.left, Math.min(x0, x1));
            var right = Math.min(u.bbox.left + u.bbox.width, Math.max(x0, x1, x0 + 2));
            if (right > left) {
              ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
            }
          });
          ctx.restore();
        }]
      }
    };
  }

  function draw(el, chart) {
    var width = Math.max(280, el.clientWidth || 480);
    var series = [{ label: "time (UTC)" }];
    chart.series.forEach(function (s) {
      var st = STYLE[s.role] || STYLE.value;
      series.push({
        label: s.label, stroke: st.stroke, width: st.width, dash: st.dash,
        spanGaps: true, points: { show: st.points, size: 5, fill: st.stroke }
      });
    });
    var xs = chart.x;
    var opts = {
      width: width, height: 220, series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      // every chart of a page on the page's time range (when given): incidents line up
      scales: { x: data.range ? { time: true, range: function () { return data.range; } }
                              : { time: true } },
      axes: [{}, { size: 60 }],
      legend: { live: true },
      plugins: [bandsPlugin(chart.bands || [])]
    };
    var columns = [xs].concat(chart.series.map(function (s) { return s.values; }));
    el.dataset.drawn = String(chart.x.length);
    return new uPlot(opts, columns, el);
  }

  data.charts.forEach(function (chart) {
    var el = document.querySelector('[data-chart="' + chart.id + '"]');
    if (el && chart.x.length) { draw(el, chart); }
    else if (el) { el.textContent = "no values in this range"; el.classList.add("empty"); }
  });
}());
