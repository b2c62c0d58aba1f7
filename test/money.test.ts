import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TollgateError } from '../src/kernel/errors.js';
import {
  CURRENCY_CODES,
  Decimal,
  formatDecimal,
  formatMajor,
  formatMoney,
  isCurrencyCode,
  minorToMajor,
  minorUnitExponent,
  parseMajorAmount,
  parseUnitPrice,
  roundToMinorUnits,
} from '../src/kernel/money.js';

describe('currencies', () => {
  it('knows the ISO 4217 minor-unit exponents', () => {
    expect(minorUnitExponent('USD')).toBe(2);
    expect(minorUnitExponent('EUR')).toBe(2);
    expect(minorUnitExponent('GBP')).toBe(2);
    expect(minorUnitExponent('CHF')).toBe(2);
    expect(minorUnitExponent('CAD')).toBe(2);
    expect(minorUnitExponent('AUD')).toBe(2);
    expect(minorUnitExponent('INR')).toBe(2);
    expect(minorUnitExponent('JPY')).toBe(0);
    expect(minorUnitExponent('KRW')).toBe(0);
    expect(minorUnitExponent('BHD')).toBe(3);
    expect(minorUnitExponent('KWD')).toBe(3);
  });

  it('recognizes only listed codes', () => {
    expect(isCurrencyCode('USD')).toBe(true);
    expect(isCurrencyCode('usd')).toBe(false);
    expect(isCurrencyCode('XYZ')).toBe(false);
    expect(isCurrencyCode('toString')).toBe(false);
    expect(CURRENCY_CODES).toContain('JPY');
  });
});

describe('parseMajorAmount', () => {
  it('parses major units into minor units', () => {
    expect(parseMajorAmount('49.00', 'USD')).toBe(4900n);
    expect(parseMajorAmount('49', 'USD')).toBe(4900n);
    expect(parseMajorAmount('0.5', 'USD')).toBe(50n);
    expect(parseMajorAmount('-5.25', 'EUR')).toBe(-525n);
    expect(parseMajorAmount('5000', 'JPY')).toBe(5000n);
    expect(parseMajorAmount('10.500', 'BHD')).toBe(10500n);
    expect(parseMajorAmount('123456789012345678901234567890.99', 'USD')).toBe(12345678901234567890123456789099n);
  });

  it('rejects more decimals than the currency has', () => {
    expect(() => parseMajorAmount('49.001', 'USD')).toThrow(/more decimals than USD allows \(2\)/);
    expect(() => parseMajorAmount('5000.5', 'JPY')).toThrow(/JPY allows \(0\)/);
    expect(() => parseMajorAmount('1.0001', 'BHD')).toThrow(/BHD allows \(3\)/);
  });

  it('rejects anything but a plain decimal', () => {
    for (const text of ['', '1e3', '+5', '.5', '5.', '1,000.00', ' 5', 'NaN', '0x10', '--1']) {
      expect(() => parseMajorAmount(text, 'USD'), text).toThrow(TollgateError);
    }
  });
});

describe('parseUnitPrice', () => {
  it('keeps sub-minor-unit precision', () => {
    expect(parseUnitPrice('0.005').toFixed()).toBe('0.005');
    expect(parseUnitPrice('0.0000001').times(10_000_000).toFixed()).toBe('1');
  });

  it('rejects negative and malformed prices', () => {
    for (const text of ['-0.01', '1e-3', 'abc', '']) expect(() => parseUnitPrice(text), text).toThrow(TollgateError);
  });
});

/** Decimals with up to 6 places and 20 digits, both signs. */
const decimal = fc
  .tuple(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), fc.integer({ min: 0, max: 6 }))
  .map(([digits, scale]) => new Decimal(digits.toString()).div(new Decimal(10).pow(scale)));

describe('roundToMinorUnits (half-even at the line level)', () => {
  it('rounds ties to the even minor unit', () => {
    const cents = (major: string) => roundToMinorUnits(new Decimal(major), 'USD');
    expect(cents('0.005')).toBe(0n);
    expect(cents('0.015')).toBe(2n);
    expect(cents('0.025')).toBe(2n);
    expect(cents('0.035')).toBe(4n);
    expect(cents('0.0051')).toBe(1n);
    expect(cents('0.0049')).toBe(0n);
    expect(cents('-0.025')).toBe(-2n);
    expect(cents('-0.035')).toBe(-4n);
  });

  it('rounds to the currency exponent', () => {
    expect(roundToMinorUnits(new Decimal('2.5'), 'JPY')).toBe(2n);
    expect(roundToMinorUnits(new Decimal('3.5'), 'JPY')).toBe(4n);
    expect(roundToMinorUnits(new Decimal('0.0015'), 'BHD')).toBe(2n);
    expect(roundToMinorUnits(new Decimal('0.0025'), 'BHD')).toBe(2n);
  });

  it('is symmetric, so a charge and its reversal cancel', () => {
    fc.assert(
      fc.property(decimal, (major) => {
        expect(roundToMinorUnits(major.neg(), 'USD')).toBe(-roundToMinorUnits(major, 'USD'));
      }),
    );
  });

  it('never moves an amount by more than half a minor unit', () => {
    fc.assert(
      fc.property(decimal, (major) => {
        const rounded = minorToMajor(roundToMinorUnits(major, 'USD'), 'USD');
        expect(rounded.minus(major).abs().lte('0.005')).toBe(true);
      }),
    );
  });
});

describe('formatting', () => {
  it('formats with exactly the currency decimals', () => {
    expect(formatMoney(12500n, 'USD')).toBe('125.00 USD');
    expect(formatMoney(125000n, 'USD')).toBe('1250.00 USD');
    expect(formatMoney(5n, 'USD')).toBe('0.05 USD');
    expect(formatMoney(-5n, 'USD')).toBe('-0.05 USD');
    expect(formatMoney(0n, 'EUR')).toBe('0.00 EUR');
    expect(formatMoney(5000n, 'JPY')).toBe('5000 JPY');
    expect(formatMoney(-7n, 'KRW')).toBe('-7 KRW');
    expect(formatMoney(10500n, 'BHD')).toBe('10.500 BHD');
    expect(formatMoney(1n, 'KWD')).toBe('0.001 KWD');
  });

  it('formats decimals with at least the currency decimals, and more only when they have them', () => {
    expect(['49.9', '49', '0.005', '0.10', '-240', '1.255'].map((text) => formatDecimal(text, 'USD'))).toEqual(['49.90', '49.00', '0.005', '0.10', '-240.00', '1.255']);
    expect(formatDecimal(new Decimal('19.12'), 'BHD')).toBe('19.120');
    expect(formatDecimal('5', 'JPY')).toBe('5');
    expect(formatDecimal('0.5', 'JPY')).toBe('0.5');
  });

  it('round-trips with parseMajorAmount for every currency', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CURRENCY_CODES),
        fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
        (currency, minor) => {
          expect(parseMajorAmount(formatMajor(minor, currency), currency)).toBe(minor);
          expect(roundToMinorUnits(minorToMajor(minor, currency), currency)).toBe(minor);
        },
      ),
    );
  });
});
