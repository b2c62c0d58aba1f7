/** The portal's look from configuration: a validated primary colour and the colours drawn on it. Pure. */

const hexColour = /^#([0-9a-f]{6})$/i;

/** WCAG 2 relative luminance of a #rrggbb colour. */
export function relativeLuminance(colour: string): number {
  const match = hexColour.exec(colour);
  if (!match) throw new Error(`"${colour}" is not a #rrggbb colour`);
  const channels = [0, 2, 4].map((offset) => Number.parseInt(match[1]!.slice(offset, offset + 2), 16) / 255);
  const [r, g, b] = channels.map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG 2 contrast ratio of two #rrggbb colours, from 1 to 21. */
export function contrastRatio(a: string, b: string): number {
  const [light, dark] = [relativeLuminance(a), relativeLuminance(b)].sort((x, y) => y - x) as [number, number];
  return (light + 0.05) / (dark + 0.05);
}

/** Links and buttons are drawn in the primary colour on white: it needs the contrast WCAG AA asks of text. */
export const minimumContrast = 4.5;

/** Why a primary colour cannot be used, or undefined if it can. */
export function primaryColourProblem(colour: string): string | undefined {
  if (!hexColour.test(colour)) return 'must be a colour written #rrggbb, such as #1d4ed8';
  const ratio = contrastRatio(colour, '#ffffff');
  if (ratio < minimumContrast) {
    return `must be dark enough to read on white (contrast ${ratio.toFixed(2)}:1, at least ${minimumContrast}:1 needed)`;
  }
  return undefined;
}

/** The text colour for labels on the primary colour (buttons): whichever of white and near-black reads better. */
export function textOn(colour: string): string {
  return contrastRatio(colour, '#ffffff') >= contrastRatio(colour, '#111827') ? '#ffffff' : '#111827';
}
