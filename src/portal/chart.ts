/**
 * Usage over time as a server-drawn SVG: one stacked bar per day, one colour per endpoint, with a title and a
 * summary for screen readers, a legend, and the same figures as a table. Pure.
 */
import { html, type Html } from './html.js';

export interface DailySeries {
  /** YYYY-MM-DD, oldest first, every day of the range. */
  days: string[];
  /** Calls per day, aligned with `days`, per endpoint. */
  endpoints: { id: string; calls: number[] }[];
}

/** Eight colours told apart in common colour blindness (Okabe-Ito based), each at least 3:1 against white. */
export const seriesColours = ['#0b5cad', '#c25400', '#007a5a', '#b8006b', '#5b4ab0', '#8a6d00', '#0086a8', '#a6281c'];

/** Builds a day-by-day series from sparse rows; endpoints ordered by calls, busiest first. */
export function dailySeries(rows: readonly { day: string; endpointId: string | null; calls: number }[], days: string[]): DailySeries {
  const index = new Map(days.map((day, i) => [day, i]));
  const byEndpoint = new Map<string, number[]>();
  for (const row of rows) {
    const i = index.get(row.day);
    if (i === undefined) continue;
    const id = row.endpointId ?? '(no endpoint)';
    let calls = byEndpoint.get(id);
    if (!calls) byEndpoint.set(id, (calls = Array<number>(days.length).fill(0)));
    calls[i]! += row.calls;
  }
  const total = (calls: number[]) => calls.reduce((sum, n) => sum + n, 0);
  const endpoints = [...byEndpoint].map(([id, calls]) => ({ id, calls })).sort((a, b) => total(b.calls) - total(a.calls) || (a.id < b.id ? -1 : 1));
  return { days, endpoints };
}

/** The `count` UTC days ending with the day of `now`, as YYYY-MM-DD. */
export function lastDays(now: number, count: number): string[] {
  const today = Math.floor(now / 86_400_000) * 86_400_000;
  return Array.from({ length: count }, (_, i) => new Date(today - (count - 1 - i) * 86_400_000).toISOString().slice(0, 10));
}

/** A round axis maximum at or above `max`: 1, 2 or 5 times a power of ten. */
export function niceCeiling(max: number): number {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((step) => step * power).find((value) => value >= max)!;
}

const width = 720;
const height = 240;
const margin = { top: 12, right: 8, bottom: 28, left: 44 };

export function usageChart(series: DailySeries, id: string): Html {
  const totals = series.days.map((_, i) => series.endpoints.reduce((sum, endpoint) => sum + endpoint.calls[i]!, 0));
  const grandTotal = totals.reduce((sum, n) => sum + n, 0);
  const top = niceCeiling(Math.max(0, ...totals));
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const slot = plotWidth / Math.max(1, series.days.length);
  const barWidth = Math.max(1, slot * 0.7);
  const y = (value: number) => margin.top + plotHeight - (value / top) * plotHeight;
  const busiest = series.days[totals.indexOf(Math.max(0, ...totals))];
  const summary =
    grandTotal === 0
      ? `No calls from ${series.days[0]} to ${series.days.at(-1)}.`
      : `${grandTotal} calls from ${series.days[0]} to ${series.days.at(-1)}, most on ${busiest} (${Math.max(...totals)}), ` +
        `to ${series.endpoints.length} endpoint${series.endpoints.length === 1 ? '' : 's'}: ` +
        series.endpoints.map((endpoint) => `${endpoint.id} ${endpoint.calls.reduce((sum, n) => sum + n, 0)}`).join(', ') + '.';

  const bars = series.days.map((day, i) => {
    let base = 0;
    const x = margin.left + i * slot + (slot - barWidth) / 2;
    return series.endpoints.map((endpoint, e) => {
      const calls = endpoint.calls[i]!;
      if (calls === 0) return '';
      const rect = html`<rect x="${x.toFixed(1)}" y="${y(base + calls).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${(y(base) - y(base + calls)).toFixed(1)}" fill="${seriesColours[e % seriesColours.length]}"><title>${day}: ${calls} calls to ${endpoint.id}</title></rect>`;
      base += calls;
      return rect;
    });
  });
  const ticks = [0, top / 2, top].map(
    (value) =>
      html`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}" class="grid"/><text x="${margin.left - 6}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${formatTick(value)}</text>`,
  );
  const labelEvery = Math.ceil(series.days.length / 6);
  const labels = series.days.map((day, i) =>
    i % labelEvery === 0 || i === series.days.length - 1
      ? html`<text x="${(margin.left + i * slot + slot / 2).toFixed(1)}" y="${height - 8}" text-anchor="middle">${day.slice(5)}</text>`
      : '',
  );

  return html`<figure class="chart">
<svg viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="${id}-title ${id}-desc" preserveAspectRatio="xMidYMid meet">
<title id="${id}-title">Calls per day and endpoint</title>
<desc id="${id}-desc">${summary}</desc>
${ticks}${bars}${labels}
</svg>
<figcaption>
<ul class="legend">${series.endpoints.map(
    (endpoint, e) =>
      html`<li><svg width="12" height="12" aria-hidden="true" focusable="false"><rect width="12" height="12" fill="${seriesColours[e % seriesColours.length]}"/></svg> ${endpoint.id}</li>`,
  )}</ul>
</figcaption>
</figure>
<details class="chart-data">
<summary>The same figures as a table</summary>
<div class="table-scroll"><table>
<caption>Calls per day and endpoint</caption>
<thead><tr><th scope="col">Day</th>${series.endpoints.map((endpoint) => html`<th scope="col">${endpoint.id}</th>`)}<th scope="col">Total</th></tr></thead>
<tbody>${series.days.map(
    (day, i) =>
      html`<tr><th scope="row">${day}</th>${series.endpoints.map((endpoint) => html`<td>${endpoint.calls[i]}</td>`)}<td>${totals[i]}</td></tr>`,
  )}</tbody>
</table></div>
</details>`;
}

function formatTick(value: number): string {
  return value >= 1000 && value % 1000 === 0 ? `${value / 1000}k` : String(Math.round(value * 100) / 100);
}
