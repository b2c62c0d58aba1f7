// Ids shaped like Stripe's: a type prefix and random base62 characters (`cus_QXg1o8vcGmoR32`, `in_1Pgc6t…`).
import { randomInt } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function randomBase62(length: number): string {
  return Array.from({ length }, () => BASE62[randomInt(BASE62.length)]).join('');
}

/** Stripe uses 14 random characters for customers and products, 24 for most other objects. */
export function newId(prefix: string, length = 24): string {
  return `${prefix}_${randomBase62(length)}`;
}
