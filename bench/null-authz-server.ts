/**
 * The Check benchmark's baseline: an ext_authz server on the same grpc-js, protos and server options that answers OK
 * without looking at the request. Prints its port as one JSON line when ready.
 */
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyServices } from '../src/grpc/protos.js';
import { grpcServerOptions } from '../src/grpc/server.js';

// Exit normally on a signal so --cpu-prof can write its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));

const server = new grpc.Server(grpcServerOptions);
server.addService(loadEnvoyServices().authorization, {
  Check: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { status: { code: 0 } }),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
