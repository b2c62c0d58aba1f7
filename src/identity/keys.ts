import { hash, randomBytes } from 'node:crypto';

const keyPrefix = 'tg_';
const base62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Random id with a type prefix, e.g. `key_3hF8…`; 16 random bytes are enough to never collide. */
export function newId(type: string, bytes = 16): string {
  return `${type}_${encodeBase62(randomBytes(bytes))}`;
}

/** A new API key: 32 bytes of randomness; only its hash and display prefix are stored. */
export function generateApiKey(): { key: string; hash: string; prefix: string } {
  const key = `${keyPrefix}${encodeBase62(randomBytes(32))}`;
  return { key, hash: hashApiKey(key), prefix: displayPrefix(key) };
}

/** Only generated keys authenticate as API keys (an OAuth client's derived credential never does). */
export const isApiKey = (key: string) => key.startsWith(keyPrefix);

/** Keys are long random strings, so a fast unsalted hash is safe and keeps the Check cheap (as Unkey does). */
export function hashApiKey(key: string): string {
  // The one-shot hash (Node 20.12+) skips the Hash object: this runs on every Check.
  return hash('sha256', key, 'hex');
}

/**
 * An OAuth2 client is registered like an API key: its "key" is derived from the client id (the verified JWT claim),
 * so the Check resolves it through the same hash lookup, revocation and plan changes.
 */
export function oauthClientCredential(clientId: string): { key: string; hash: string; prefix: string } {
  const key = `oauth-client:${clientId}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 64) };
}

export const displayPrefix = (key: string) => key.slice(0, keyPrefix.length + 6);

function encodeBase62(bytes: Buffer): string {
  let value = BigInt(`0x${bytes.toString('hex')}`);
  let out = '';
  while (value > 0n) {
    out = base62[Number(value % 62n)]! + out;
    value /= 62n;
  }
  return out.padStart(Math.ceil((bytes.length * 8) / Math.log2(62)), '0');
}
