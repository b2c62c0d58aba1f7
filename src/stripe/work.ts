import type { OutboxItem } from './outbox.js';

/** One attempt at one outbox item, as its handler sees it. */
export interface StripeWork {
  item: OutboxItem;
  /**
   * The idempotency key of one write of this work, from our own ids (`tollgate:invoice:in_1:create`), so every
   * attempt and every replica sends the same key. It changes only after Stripe declared a key's saved failure
   * final, and then only for writes the handler first checked had not happened.
   */
  key(...parts: string[]): string;
  /** An earlier attempt failed, perhaps after Stripe applied some of its writes: look before writing. */
  mayHaveApplied: boolean;
}

export function workFor(item: OutboxItem): StripeWork {
  const generation = item.keyGeneration > 0 ? `:g${item.keyGeneration}` : '';
  return { item, key: (...parts) => `tollgate:${parts.join(':')}${generation}`, mayHaveApplied: item.lastError !== null };
}

