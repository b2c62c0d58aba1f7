import { type CheckRequestWire, type Method, type UnaryCall, unaryMethod } from '../grpc/index.js';
import { decodeCheckRequest } from './check-request-decoder.js';
import { encodeCheckResponseFrame } from './check-response-encoder.js';
import type { Decision } from './decision.js';

export type CheckHandler = (request: CheckRequestWire, call: UnaryCall<Decision>) => void;

/**
 * The Check as a method of the gRPC transport: the hand-written request decoder and response encoder around the
 * handler, for authenticated callers only. grpc/server.ts serves it; it knows nothing of Decisions.
 */
export function checkMethod(handle: CheckHandler): Method {
  return unaryMethod<CheckRequestWire, Decision>({ authenticated: true, decode: decodeCheckRequest, encode: encodeCheckResponseFrame, handle });
}
