// Activities per day for the last 30 days, per subscription: stacked bars drawn as SVG with
// createElementNS, and the same numbers as a table for screen readers and exact reading.

import { h, s } from "../dom.js";
import { formatCount } from "../format.js";
import { scrollBox } from "../ui.js";

const PALETTE_SIZE = 8;
const WIDTH = 720;
const HEIGHT = 240;
const MARGIN = { top: 12, right: 12, bottom: 36, left: 48 };

function niceMax(value) {
  if (value <= 5) return 5;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function shortDay(day) {
  // "YYYY-MM-DD" (UTC) as "MM-DD"; the table gives the full date.
  return day.slice(5);
}

function svgChart(days, subs, titleId, descId) {
  const totals = days.map((_, i) => subs.reduce((sum, sub) => sum + (sub.counts[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const band = plotW / Math.max(1, days.length);
  const barW = Math.max(2, band * 0.7);
  const y = (value) => MARGIN.top + plotH - (value / max) * plotH;

  const grid = s("g", { className: "grid", "aria-hidden": "true" });
  for (let i = 0; i <= 5; i += 1) {
    const value = (max / 5) * i;
    grid.append(
      s("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value) }),
      s("text", { x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end" }, formatCount(Math.round(value))),
    );
  }
  const labels = s("g", { className: "axis", "aria-hidden": "true" });
  days.forEach((day, i) => {
    if (i % 5 === 0 || i === days.length - 1) {
      labels.append(s("text", { x: MARGIN.left + band * i + band / 2, y: HEIGHT - 14, "text-anchor": "middle" }, shortDay(day)));
    }
  });
  const bars = s("g", { className: "bars" });
  days.forEach((day, i) => {
    let base = 0;
    subs.forEach((sub, k) => {
      const count = sub.counts[i] || 0;
      if (count === 0) return;
      const top = y(base + count);
      bars.append(
        s(
          "rect",
          {
            className: `series-${k % PALETTE_SIZE}`,
            x: MARGIN.left + band * i + (band - barW) / 2,
            y: top,
            width: barW,
            height: Math.max(0.5, y(base) - top),
          },
          s("title", null, `${day}, ${sub.displayName || sub.subscriptionId}: ${formatCount(count)}`),
        ),
      );
      base += count;
    });
  });
  return s(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
      "aria-describedby": descId,
      className: "chart",
      preserveAspectRatio: "xMidYMid meet",
    },
    s("title", { id: titleId }, "Activities per day, per subscription, last 30 days"),
    grid,
    bars,
    labels,
  );
}

/**
 * The series to draw: the busiest subscriptions, each on its own, and the rest summed as one
 * (a tenant can have thousands of subscriptions; a chart and a table cannot show them apart).
 */
export function chartSeries(subscriptions, dayCount, shown = PALETTE_SIZE - 1) {
  const withTotals = subscriptions.map((sub) => ({
    subscriptionId: sub.subscriptionId,
    displayName: sub.displayName || sub.subscriptionId,
    counts: Array.from({ length: dayCount }, (_, i) => sub.counts[i] || 0),
  }));
  withTotals.forEach((sub) => {
    sub.total = sub.counts.reduce((a, b) => a + b, 0);
  });
  withTotals.sort((a, b) => b.total - a.total || a.displayName.localeCompare(b.displayName));
  if (withTotals.length <= shown + 1) return withTotals;
  const rest = withTotals.slice(shown);
  const other = {
    subscriptionId: null,
    displayName: `${rest.length} other subscriptions`,
    counts: Array.from({ length: dayCount }, (_, i) => rest.reduce((sum, sub) => sum + sub.counts[i], 0)),
  };
  return [...withTotals.slice(0, shown), other];
}

export function activityChart(data) {
  const days = data.days || [];
  const allSubs = data.subscriptions || [];
  const subs = chartSeries(allSubs, days.length);
  const total = subs.reduce((sum, sub) => sum + sub.counts.reduce((a, b) => a + b, 0), 0);
  const descId = "chart-desc";
  const summary = h(
    "p",
    { id: descId },
    days.length
      ? `${formatCount(total)} activities from ${days[0]} to ${days[days.length - 1]} (days in UTC), in ${allSubs.length} subscription${allSubs.length === 1 ? "" : "s"}. The table below has the numbers.`
      : "No days to show.",
  );
  const legend = h(
    "ul",
    { className: "legend", "aria-label": "Subscriptions in the chart" },
    subs.map((sub, k) =>
      h("li", null, h("span", { className: `swatch series-${k % PALETTE_SIZE}`, "aria-hidden": "true" }), sub.displayName || sub.subscriptionId),
    ),
  );
  const table = h(
    "table",
    { className: "chart-table" },
    h("caption", null, "Activities per day (UTC) and subscription"),
    h(
      "thead",
      null,
      h("tr", null, h("th", { scope: "col" }, "Day"), subs.map((sub) => h("th", { scope: "col" }, sub.displayName || sub.subscriptionId)), h("th", { scope: "col" }, "Total")),
    ),
    h(
      "tbody",
      null,
      days.map((day, i) =>
        h(
          "tr",
          null,
          h("th", { scope: "row" }, day),
          subs.map((sub) => h("td", { className: "number" }, formatCount(sub.counts[i] || 0))),
          h("td", { className: "number" }, formatCount(subs.reduce((sum, sub) => sum + (sub.counts[i] || 0), 0))),
        ),
      ),
    ),
  );
  return h(
    "div",
    { className: "chart-block" },
    summary,
    subs.length ? [svgChart(days, subs, "chart-title-svg", descId), legend] : h("p", null, "No subscription has activities yet."),
    h("details", null, h("summary", null, "Show the numbers as a table"), scrollBox("Activities per day (UTC) and subscription", table)),
  );
}
