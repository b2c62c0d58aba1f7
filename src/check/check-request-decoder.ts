import { cachedString, checkEnd, type CheckRequestWire, decodeWith, delimitedEnd, type HeaderValue, onlyField, r, repeatedFirstField, skip, string, stringMapEntry, varint32 } from '../grpc/index.js';

/**
 * A direct protobuf decoder for envoy.service.auth.v3.CheckRequest, the message every Check starts with. It reads
 * only the HTTP request facts the Check uses (see CheckRequestWire) and skips the rest of the attributes (peer
 * addresses and certificates, metadata contexts, TLS session, body) by wire type, without building objects for them.
 * The shapes are those @grpc/proto-loader gives with the options in src/grpc/protos.ts.
 * test/check-request-decoder.test.ts proves it agrees with protobufjs on what it reads.
 * Field numbers: envoy/service/auth/v3/external_auth.proto, envoy/service/auth/v3/attribute_context.proto,
 * envoy/config/core/v3/base.proto.
 */

type HttpRequest = NonNullable<NonNullable<NonNullable<CheckRequestWire['attributes']>['request']>['http']>;

/** HeaderValue: key = 1, value = 2, raw_value = 3. */
function headerValue(): HeaderValue {
  const end = delimitedEnd();
  const out: HeaderValue = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) out.key = cachedString();
    else if (tag === 18) out.value = string();
    else if (tag === 26) {
      const bytesEnd = delimitedEnd();
      out.raw_value = Buffer.from(r.buf.subarray(r.pos, bytesEnd));
      r.pos = bytesEnd;
    } else skip(tag & 7);
  }
  checkEnd(end);
  return out;
}

/**
 * Headers a request may carry, in `headers` and `header_map` together: Envoy's own default is 100
 * (max_headers_count), and a 4 MiB message of empty ones would be half a million objects to build before any check.
 */
export const maxCheckHeaders = 1_000;
let headersSeen = 0;

function countHeader(): void {
  if (++headersSeen > maxCheckHeaders) throw new Error(`more than ${maxCheckHeaders} headers`);
}

function countedHeaderValue(): HeaderValue {
  countHeader();
  return headerValue();
}

/** HeaderMap: repeated HeaderValue headers = 1. */
function headerMap(): { headers?: HeaderValue[] } {
  const headers = repeatedFirstField(countedHeaderValue);
  return headers ? { headers } : {};
}

/** AttributeContext.HttpRequest: id = 1, method = 2, headers = 3, path = 4, host = 5, header_map = 13. */
function httpRequest(): HttpRequest {
  const end = delimitedEnd();
  const out: HttpRequest = {};
  headersSeen = 0;
  while (r.pos < end) {
    const tag = varint32();
    switch (tag) {
      case 10:
        out.id = string();
        break;
      case 18:
        out.method = cachedString();
        break;
      case 26:
        countHeader();
        out.headers = stringMapEntry(out.headers);
        break;
      case 34:
        out.path = string();
        break;
      case 42:
        out.host = cachedString();
        break;
      case 106:
        out.header_map = headerMap();
        break;
      default:
        skip(tag & 7);
    }
  }
  checkEnd(end);
  return out;
}

/** AttributeContext.Request: http = 2. */
function request(): { http?: HttpRequest } {
  const http = onlyField(delimitedEnd(), 18, httpRequest);
  return http ? { http } : {};
}

/** AttributeContext: request = 4. */
function attributes(): NonNullable<CheckRequestWire['attributes']> {
  const requestAttributes = onlyField(delimitedEnd(), 34, request);
  return requestAttributes ? { request: requestAttributes } : {};
}

/** CheckRequest: attributes = 1. */
export function decodeCheckRequest(bytes: Buffer): CheckRequestWire {
  return decodeWith(bytes, 'CheckRequest', (end) => {
    const checkAttributes = onlyField(end, 10, attributes);
    return checkAttributes ? { attributes: checkAttributes } : {};
  });
}
