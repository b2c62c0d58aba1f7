/**
 * How the CLI shows results to people: lists as aligned tables, single objects as `label: value` lines. Scripts ask
 * for --json and get the admin API's JSON instead (main.ts).
 */

export type Cell = string | number | boolean | null | undefined;

export interface Column<Row> {
  header: string;
  value(row: Row): Cell;
  /** Numbers and amounts line up on the right. */
  right?: boolean;
}

/** An aligned table with upper-case headers; `empty` stands in for a table without rows. */
export function table<Row>(rows: readonly Row[], columns: Column<Row>[], empty = '(none)'): string {
  if (rows.length === 0) return empty;
  const cells = rows.map((row) => columns.map((column) => text(column.value(row))));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => (columns[i]!.right ? value.padStart(widths[i]!) : i === values.length - 1 ? value : value.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.header.toUpperCase())), ...cells.map(line)].join('\n');
}

/** `label: value` lines, values aligned; undefined values are left out, null ones show as "-". */
export function fields(pairs: [label: string, value: Cell][]): string {
  const shown = pairs.filter(([, value]) => value !== undefined);
  const width = Math.max(0, ...shown.map(([label]) => label.length + 1));
  return shown.map(([label, value]) => `${`${label}:`.padEnd(width)}  ${text(value)}`.trimEnd()).join('\n');
}

/**
 * Any JSON object as `label: value` lines: camelCase keys in words, nested objects under their parent's name, lists
 * of plain values joined, lists of objects as their count.
 */
export function describe(value: Record<string, unknown>): string {
  const pairs: [string, Cell][] = [];
  const walk = (object: Record<string, unknown>, prefix: string) => {
    for (const [key, item] of Object.entries(object)) {
      const label = `${prefix}${words(key)}`;
      if (item !== null && typeof item === 'object' && !Array.isArray(item)) walk(item as Record<string, unknown>, `${label} `);
      else if (Array.isArray(item)) pairs.push([label, item.every((entry) => entry === null || typeof entry !== 'object') ? item.join(', ') : `${item.length} items`]);
      else pairs.push([label, typeof item === 'string' ? when(item) : (item as Cell)]);
    }
  };
  walk(value, '');
  return fields(pairs);
}

/** camelCase and snake_case to words: "statusReason" → "status reason". */
export const words = (key: string) => key.replace(/_/g, ' ').replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();

function text(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/** An amount the API formatted in major units, with its currency: "49.00 USD". */
export const money = (amount: string | null | undefined, currency: string) => (amount === null || amount === undefined ? undefined : `${amount} ${currency}`);

/** An ISO timestamp to the second, in UTC: "2026-11-01 00:00:00Z"; the API's own text otherwise. */
export function when(iso: string | null | undefined): string | undefined {
  if (iso === null || iso === undefined) return undefined;
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$/.exec(iso);
  return match ? `${match[1]} ${match[2]}Z` : iso;
}

/** A period [start, end) as days when both fall on midnight UTC (as billing periods do). */
export function period(start: string, end: string): string {
  const day = (iso: string) => (/T00:00:00(?:\.0+)?Z$/.test(iso) ? iso.slice(0, 10) : when(iso));
  return `${day(start)} – ${day(end)}`;
}

/** Sections separated by a blank line; sections with a title get it on their own line. */
export function sections(...parts: ([title: string, body: string] | string | undefined)[]): string {
  return parts
    .filter((part) => part !== undefined)
    .map((part) => (typeof part === 'string' ? part : `${part[0]}\n${part[1]}`))
    .join('\n\n');
}
