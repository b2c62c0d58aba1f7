/**
 * The Check benchmark's baseline: an ext_authz server on the same grpc-js, protos and server options that answers OK
 * without looking at the request. Prints its port as one JSON line when ready.
 */
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyServices } from '../src/grpc/protos.js';

// Exit normally on a signal so --cpu-prof can write its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));

// The options grpc-js took when it served Tollgate: keepalive, a high stream limit, and no channelz bookkeeping.
const server = new grpc.Server({
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.max_concurrent_streams': 10_000,
  'grpc.enable_channelz': 0,
});
server.addService(loadEnvoyServices().authorization, {
  Check: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { status: { code: 0 } }),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
