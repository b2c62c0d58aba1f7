/**
 * The gRPC server over node:http2: transport, health, caller authentication, the services' wiring, protobuf reading,
 * wire types, the access-log decoder. Other modules import only this file (.dependency-cruiser.cjs).
 */
export type { HttpAccessLogEntryWire, HttpLogEntries, SecondsNanosWire, StreamAccessLogsMessageWire } from './als-wire.js';
export { decodeHttpAccessLogEntry } from './als-decoder.js';
export { cachedString, checkEnd, decodeWith, delimitedEnd, onlyField, r, repeatedFirstField, skip, string, stringMapEntry, truncated, varint32, varint64 } from './protobuf-reader.js';
export { loadEnvoyServices } from './protos.js';
export { grpcSecurity } from './security.js';
export { checkServiceName, startGrpcServer } from './server.js';
export type { AccessLogHandler, RunningGrpcServer } from './server.js';
export { Status, unaryMethod } from './transport.js';
export type { Method, StatusCode, UnaryCall } from './transport.js';
export { fromStruct } from './wire.js';
export type { CheckRequestWire, CheckResponseWire, HeaderValue, HeaderValueOption } from './wire.js';
export { toStruct } from './wire.js';
export { extAuthzNamespace } from './als-wire.js';
