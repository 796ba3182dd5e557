// A live line chart on a canvas: events counted per second, the last `span` seconds.
// Counting is cheap and happens as events arrive; the chart is drawn once a second, as
// its window slides by one bucket (drawing on every event would only repeat the
// current bucket's partial count, at the cost of the page's CPU).
import { coalesce } from "./dom.js";

export class RateChart {
  /** series: [{name, color}]; legend (optional): an element given the rates as text. */
  constructor(canvas, series, legend = null, span = 60) {
    this.canvas = canvas;
    this.legend = legend;
    this.series = series;
    this.span = span;
    this.buckets = series.map(() => new Map());
    this.redraw = coalesce(() => this.draw());
    this.ticker = setInterval(this.redraw, 1000);
    this.redraw();
  }

  /** Count one event of series `index`, seen at `time` (seconds since the epoch; now). */
  count(index, time = Date.now() / 1000, n = 1) {
    const second = Math.floor(time);
    const buckets = this.buckets[index];
    buckets.set(second, (buckets.get(second) || 0) + n);
  }

  /** Events per second of series `index` over the last complete seconds. */
  rate(index, seconds = 5) {
    const now = Math.floor(Date.now() / 1000);
    let total = 0;
    for (let s = now - seconds; s < now; s++) total += this.buckets[index].get(s) || 0;
    return total / seconds;
  }

  close() {
    clearInterval(this.ticker);
  }

  draw() {
    const { canvas } = this;
    if (this.legend) this.legend.textContent = this.series.map(({ name }, index) => `${this.rate(index).toFixed(1)} ${name}/s`).join(", ") + " (last 5 s)";
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 160;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const context = canvas.getContext("2d");
    context.scale(ratio, ratio);
    context.clearRect(0, 0, width, height);
    const now = Math.floor(Date.now() / 1000);
    const first = now - this.span;
    for (const buckets of this.buckets) {
      for (const second of buckets.keys()) if (second < first) buckets.delete(second);
    }
    let top = 1;
    for (const buckets of this.buckets) for (const n of buckets.values()) top = Math.max(top, n);
    const pad = 24;
    context.strokeStyle = "#ccd";
    context.fillStyle = "#667";
    context.font = "11px sans-serif";
    context.beginPath();
    context.moveTo(pad, 4);
    context.lineTo(pad, height - pad);
    context.lineTo(width - 4, height - pad);
    context.stroke();
    context.fillText(String(top), 2, 12);
    context.fillText("0", 2, height - pad);
    context.fillText(`last ${this.span} s`, width - 60, height - 8);
    const x = (second) => pad + ((second - first) / this.span) * (width - pad - 4);
    const y = (n) => height - pad - (n / top) * (height - pad - 8);
    this.series.forEach(({ name, color }, index) => {
      context.strokeStyle = color;
      context.lineWidth = 2;
      context.beginPath();
      for (let second = first; second <= now; second++) {
        const n = this.buckets[index].get(second) || 0;
        if (second === first) context.moveTo(x(second), y(n));
        else context.lineTo(x(second), y(n));
      }
      context.stroke();
      context.fillStyle = color;
      context.fillText(name, pad + 8 + index * 90, height - 8);
    });
  }
}
