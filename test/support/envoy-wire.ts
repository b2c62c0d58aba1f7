import type { Decision } from '../../src/check/decision.js';
import { grpcCodeFor } from '../../src/check/check-response-encoder.js';
import { type CheckResponseWire, type HeaderValueOption, toStruct } from '../../src/grpc/wire.js';

/**
 * Envoy-side messages as @grpc/proto-loader objects (keepCase), for clients that play Envoy in tests and the bench,
 * and the reference meaning of a Decision as a CheckResponse, which the hand-written encoder must match.
 */

export { toStruct };

/** Override semantics: append=false replaces a client-sent header of the same name (anti-spoofing). */
const overwrite = (key: string, value: string): HeaderValueOption => ({ header: { key, value }, append: { value: false } });
const overwriteAll = (headers: Record<string, string>) => Object.entries(headers).map(([key, value]) => overwrite(key, value));

/** The CheckResponse a decision stands for, as an object protobufjs can encode. */
export function referenceCheckResponse(decision: Decision): CheckResponseWire {
  // A Struct is a map: the call's own entries, written after the shared ones, win on a shared name.
  const dynamic_metadata = toStruct(decision.allowed ? { ...decision.metadata, ...decision.requestMetadata } : decision.metadata);
  if (decision.allowed) {
    return {
      status: { code: 0 },
      ok_response: {
        headers: overwriteAll(decision.upstreamHeaders),
        headers_to_remove: decision.removeHeaders,
        response_headers_to_add: overwriteAll(decision.responseHeaders),
      },
      dynamic_metadata,
    };
  }
  return {
    status: { code: grpcCodeFor[decision.status], message: decision.code },
    denied_response: {
      status: { code: decision.status },
      headers: [overwrite('content-type', 'application/json'), ...overwriteAll(decision.headers)],
      body: JSON.stringify(decision.body),
    },
    dynamic_metadata,
  };
}
