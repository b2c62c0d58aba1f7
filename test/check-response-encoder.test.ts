import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Decision, PreEncodedAllowParts } from '../src/check/decision.js';
import { encodeCheckResponseFrame, preEncodeAllowParts } from '../src/check/check-response-encoder.js';

/** The message inside the gRPC frame (1 flag byte, 4 length bytes). */
const encodeCheckResponse = (decision: Parameters<typeof encodeCheckResponseFrame>[0]): Buffer => encodeCheckResponseFrame(decision).subarray(5);
import { loaderOptions } from '../src/grpc/protos.js';
import { referenceCheckResponse } from './support/envoy-wire.js';

/** The hot path's hand-written CheckResponse encoder must mean exactly what protobufjs's encoding means. */

const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', { ...loaderOptions, defaults: true });
const check = definition['envoy.service.auth.v3.Authorization'] as unknown as {
  Check: { responseSerialize(value: unknown): Buffer; responseDeserialize(bytes: Buffer): unknown };
};
const decodeBoth = (decision: Decision) => {
  const reference = check.Check.responseSerialize(referenceCheckResponse(decision));
  return [check.Check.responseDeserialize(encodeCheckResponse(decision)), check.Check.responseDeserialize(reference)];
};

const text = fc.string({ unit: 'binary', maxLength: 40 });
const headers = fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), text, { maxKeys: 8 });
// Metadata keys are Tollgate's own field names; "__proto__" cannot be one (protobufjs's own decoding drops it).
const metadataKey = fc.string({ minLength: 1, maxLength: 20 }).filter((key) => key !== '__proto__');
const metadata = fc.dictionary(metadataKey, fc.oneof(text, fc.double({ noNaN: true }), fc.integer()), { maxKeys: 12 });

describe('encodeCheckResponse', () => {
  it('encodes any allow decision to what protobufjs decodes identically', () => {
    fc.assert(
      fc.property(headers, fc.array(fc.string({ minLength: 1 }), { maxLength: 4 }), headers, metadata, metadata, (upstreamHeaders, removeHeaders, responseHeaders, meta, own) => {
        const [ours, reference] = decodeBoth({ allowed: true, upstreamHeaders, removeHeaders, responseHeaders, metadata: meta, requestMetadata: own });
        expect(ours).toEqual(reference);
      }),
      { numRuns: 300 },
    );
  });

  it('encodes pre-encoded upstream headers as it encodes the same headers, every time', () => {
    fc.assert(
      fc.property(headers, metadata, (upstreamHeaders, meta) => {
        const preEncoded = preEncodeAllowParts(upstreamHeaders, meta);
        const withParts = (responseHeaders: Readonly<Record<string, string>>) => ({ allowed: true as const, upstreamHeaders, removeHeaders: [], responseHeaders, metadata: meta, requestMetadata: {}, preEncoded });
        const expected = encodeCheckResponse({ allowed: true, upstreamHeaders: { ...upstreamHeaders }, removeHeaders: [], responseHeaders: {}, metadata: meta, requestMetadata: {} });
        expect(encodeCheckResponse(withParts({}))).toEqual(expected);
        expect(encodeCheckResponse(withParts({}))).toEqual(expected);
        // The same headers in another field (response headers) are encoded for that field, not copied from the parts.
        expect(decodeBoth(withParts(upstreamHeaders))[0]).toEqual(decodeBoth({ ...withParts({ ...upstreamHeaders }), preEncoded: undefined })[0]);
        const [ours, reference] = decodeBoth(withParts(upstreamHeaders));
        expect(ours).toEqual(reference);
      }),
      { numRuns: 100 },
    );
  });

  it('encodes pre-encoded shared metadata as it encodes the same entries, every time', () => {
    fc.assert(
      fc.property(metadata, metadata, (shared, own) => {
        const decision = (metadata: Readonly<Record<string, string | number>>, preEncoded?: PreEncodedAllowParts) => ({ allowed: true as const, upstreamHeaders: {}, removeHeaders: [], responseHeaders: {}, metadata, requestMetadata: own, preEncoded });
        const preEncoded = preEncodeAllowParts({}, shared);
        const expected = encodeCheckResponse(decision({ ...shared }));
        expect(encodeCheckResponse(decision(shared, preEncoded))).toEqual(expected);
        expect(encodeCheckResponse(decision(shared, preEncoded))).toEqual(expected);
        const [ours, reference] = decodeBoth(decision(shared, preEncoded));
        expect(ours).toEqual(reference);
      }),
      { numRuns: 100 },
    );
  });

  it('encodes any deny decision to what protobufjs decodes identically', () => {
    fc.assert(
      fc.property(fc.constantFrom(400, 401, 402, 403, 429, 503), headers, text, metadata, (status, extra, message, meta) => {
        const [ours, reference] = decodeBoth({
          allowed: false,
          status: status as 400,
          code: 'rate_limited',
          message,
          headers: extra,
          body: { error: { code: 'rate_limited', message } },
          metadata: meta,
        });
        expect(ours).toEqual(reference);
      }),
      { numRuns: 300 },
    );
  });

  it('handles long values whose lengths need multi-byte varints', () => {
    const long = 'x'.repeat(20_000);
    // Past the reused buffer's first size, and multi-byte UTF-8 around the one-byte length boundary.
    const [ours, reference] = decodeBoth({
      allowed: true,
      upstreamHeaders: { a: long, b: 'é'.repeat(100) },
      removeHeaders: ['x'.repeat(127), 'y'.repeat(128)],
      responseHeaders: { c: '€'.repeat(42) },
      metadata: { note: long, accent: '€'.repeat(60), empty: '' },
      requestMetadata: { request_id: 'r'.repeat(130) },
    });
    expect(ours).toEqual(reference);
    const upstreamHeaders = { a: long, b: 'é'.repeat(100) };
    const metadata = { note: long, accent: '€'.repeat(60), empty: '' };
    const [preEncoded, preReference] = decodeBoth({
      allowed: true,
      upstreamHeaders,
      removeHeaders: [],
      responseHeaders: {},
      metadata,
      requestMetadata: { request_id: 'r'.repeat(130) },
      preEncoded: preEncodeAllowParts(upstreamHeaders, metadata),
    });
    expect(preEncoded).toEqual(preReference);
  });
});
