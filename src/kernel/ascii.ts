/** Writing ASCII straight into byte buffers, for rows and messages built without intermediate strings. */

/** Writes a safe integer in decimal (as String(n) gives it) at `at`; returns the position after it. */
export function writeInteger(bytes: Uint8Array, at: number, n: number): number {
  if (n < 0) {
    bytes[at++] = 0x2d; // '-'
    n = -n;
  }
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  const end = at + digits;
  for (let i = end - 1; i >= at; i--) {
    const next = Math.floor(n / 10);
    bytes[i] = 0x30 + (n - next * 10);
    n = next;
  }
  return end;
}
