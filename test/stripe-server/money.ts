// Amount arithmetic in integer minor units; unit prices may be decimal strings (`unit_amount_decimal`).

/** `quantity × unitAmountDecimal` rounded half away from zero to whole minor units, computed exactly with BigInt. */
export function lineAmount(quantity: number, unitAmountDecimal: string): number {
  const [whole = '0', fraction = ''] = unitAmountDecimal.replace('-', '').split('.');
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(quantity) * BigInt(whole + fraction);
  const rounded = (scaled * 2n + scale) / (2n * scale);
  const amount = Number(unitAmountDecimal.startsWith('-') ? -rounded : rounded);
  if (!Number.isSafeInteger(amount)) throw new RangeError(`amount out of range: ${quantity} × ${unitAmountDecimal}`);
  return amount;
}
