/** What the Check decided, independent of the wire format (check-response-encoder.ts writes it as a CheckResponse). */

export type DenialCode =
  | 'missing_key'
  | 'invalid_key'
  | 'key_revoked'
  | 'key_pending_approval'
  | 'account_suspended'
  | 'subscription_inactive'
  | 'plan_unavailable'
  | 'unknown_endpoint'
  | 'not_entitled'
  | 'rate_limited'
  | 'quota_exhausted'
  | 'wallet_exhausted'
  | 'limits_unavailable'
  | 'identity_unavailable'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_invalid_signature'
  | 'token_invalid_claims'
  | 'token_malformed'
  | 'token_missing_client'
  | 'jwks_unavailable'
  | 'malformed_request'
  | 'internal_error';

export type DenialStatus = 400 | 401 | 402 | 403 | 429 | 503;

/** Facts recorded as ext_authz dynamic metadata, which Envoy hands to the access log. */
export type DecisionMetadata = Record<string, string | number>;

/**
 * Bytes of an allowed call's shared parts, encoded once per key and compiled plan (check-plan.ts): they encode
 * `upstreamHeaders` and `metadata` exactly (preEncodeAllowParts makes them from those records).
 */
export interface PreEncodedAllowParts {
  /** CheckResponse.ok_response.headers entries. */
  readonly upstreamHeaders: Uint8Array;
  /** google.protobuf.Struct entries. */
  readonly metadataEntries: Uint8Array;
}

export interface Allow {
  allowed: true;
  /** Set on the upstream request, overwriting any client-sent value; shared by a key's calls. */
  upstreamHeaders: Readonly<Record<string, string>>;
  /** Client-sent headers in our namespace that we do not set: removed before the upstream sees them. */
  removeHeaders: string[];
  responseHeaders: Record<string, string>;
  /** Facts shared by a key's allowed calls to one endpoint (customer, subscription, plan, product, endpoint, weight, key id). */
  metadata: Readonly<DecisionMetadata>;
  /**
   * This call's own facts, recorded beside them: its request id, `degraded` when its limits were not counted, and its
   * usage id and signature (stamped by the Check service, see usage-identity.ts). Encoded anew for every call.
   */
  requestMetadata: DecisionMetadata;
  /** `upstreamHeaders` and `metadata` already encoded, when they come from a compiled plan; else they are encoded anew. */
  preEncoded?: PreEncodedAllowParts;
}

export interface Deny {
  allowed: false;
  status: DenialStatus;
  code: DenialCode;
  message: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  metadata: DecisionMetadata;
}

export type Decision = Allow | Deny;
