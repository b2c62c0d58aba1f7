import { createHmac } from 'node:crypto';

export const signatureHeaderName = 'tollgate-signature';

/**
 * The `Tollgate-Signature` header, in Stripe's scheme: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
 * keyed with the webhook's secret (its UTF-8 bytes, `whsec_` included). Receivers recompute it over the raw body
 * and reject old timestamps, which stops replays. docs/USAGE-ALERTS.md has the verification recipe.
 */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}
