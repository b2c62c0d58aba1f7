import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { deserializeStreamAccessLogsMessage } from '../metering/als-decoder.js';
import { decodeCheckRequest } from './check-request-decoder.js';
import { encodeCheckResponse } from './check-response-encoder.js';
import { loadEnvoyServices } from './protos.js';

export interface GrpcHandlers {
  check: grpc.UntypedHandleCall;
  streamAccessLogs?: grpc.UntypedHandleCall;
}

export interface RunningGrpcServer {
  port: number;
  health: HealthImplementation;
  /** Stops accepting calls, lets in-flight ones finish for up to graceMs, then cuts the rest. */
  shutdown(graceMs: number): Promise<void>;
}

export const checkServiceName = 'envoy.service.auth.v3.Authorization';
export const accessLogServiceName = 'envoy.service.accesslog.v3.AccessLogService';

/** The gRPC server's options; the Check benchmark gives its null server the same ones. */
export const grpcServerOptions: grpc.ServerOptions = {
  // Envoy keeps long-lived HTTP/2 connections; keepalive lets dead ones be noticed.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.max_concurrent_streams': 10_000,
  // No channelz service is served, and its per-call bookkeeping (timestamps, trackers) costs ~0.5 µs per Check.
  'grpc.enable_channelz': 0,
};

export async function startGrpcServer(host: string, port: number, handlers: GrpcHandlers): Promise<RunningGrpcServer> {
  const services = loadEnvoyServices();
  const server = new grpc.Server(grpcServerOptions);
  const authorization = {
    ...services.authorization,
    Check: {
      ...services.authorization.Check!,
      requestDeserialize: decodeCheckRequest as (bytes: Buffer) => unknown,
      responseSerialize: encodeCheckResponse as (value: unknown) => Buffer,
    },
  };
  server.addService(authorization, { Check: handlers.check });
  if (handlers.streamAccessLogs) {
    const accessLog = {
      ...services.accessLog,
      StreamAccessLogs: { ...services.accessLog.StreamAccessLogs!, requestDeserialize: deserializeStreamAccessLogsMessage as (bytes: Buffer) => unknown },
    };
    server.addService(accessLog, { StreamAccessLogs: handlers.streamAccessLogs });
  }
  const health = new HealthImplementation({ '': 'NOT_SERVING', [checkServiceName]: 'NOT_SERVING' });
  health.addToServer(server);
  const boundPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    port: boundPort,
    health,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
