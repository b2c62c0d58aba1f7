import type { SecureServerOptions } from 'node:http2';
import type { Decision } from '../check/decision.js';
import type { StreamAccessLogsMessageWire, StreamAccessLogsResponseWire, UndecodableMessageWire } from './als-wire.js';
import { deserializeStreamAccessLogsMessage } from './als-decoder.js';
import { decodeCheckRequest } from '../check/check-request-decoder.js';
import { encodeCheckResponseFrame } from '../check/check-response-encoder.js';
import { HealthService } from './health.js';
import {
  clientStreamMethod,
  createGrpcTransport,
  frame,
  unaryMethod,
  type Authenticator,
  type ClientStreamCall,
  type Method,
  type Peer,
  type UnaryCall,
} from './transport.js';
import type { CheckRequestWire } from './wire.js';

export type CheckHandler = (request: CheckRequestWire, call: UnaryCall<Decision>) => void;
export type AccessLogHandler = (call: ClientStreamCall<StreamAccessLogsMessageWire | UndecodableMessageWire, StreamAccessLogsResponseWire>) => void;

export interface GrpcServerOptions {
  host: string;
  port: number;
  check: CheckHandler;
  streamAccessLogs?: AccessLogHandler | undefined;
  /** Serve over TLS (mutual TLS when it names a client CA). */
  tls?: SecureServerOptions | undefined;
  /** Who may send Checks and access logs; without it, anyone who reaches the port. */
  authenticate?: Authenticator | undefined;
  onUnauthenticated?: (method: string, peer: Peer, reason: string) => void;
}

export interface RunningGrpcServer {
  port: number;
  health: HealthService;
  /** Swaps the TLS certificate for new connections; open ones keep theirs. */
  setSecureContext(tls: SecureServerOptions): void;
  /** Stops accepting calls (GOAWAY), lets in-flight ones finish for up to graceMs, then cuts the rest. */
  shutdown(graceMs: number): Promise<void>;
}

export const checkServiceName = 'envoy.service.auth.v3.Authorization';
export const accessLogServiceName = 'envoy.service.accesslog.v3.AccessLogService';

const emptyMessage = frame(Buffer.alloc(0));

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const health = new HealthService({ '': 'NOT_SERVING', [checkServiceName]: 'NOT_SERVING' });
  const methods = new Map<string, Method>(health.methods());
  methods.set(
    `/${checkServiceName}/Check`,
    unaryMethod<CheckRequestWire, Decision>({ authenticated: true, decode: decodeCheckRequest, encode: encodeCheckResponseFrame, handle: options.check }),
  );
  if (options.streamAccessLogs) {
    methods.set(
      `/${accessLogServiceName}/StreamAccessLogs`,
      clientStreamMethod<StreamAccessLogsMessageWire | UndecodableMessageWire, StreamAccessLogsResponseWire>({
        authenticated: true,
        decode: deserializeStreamAccessLogsMessage,
        encode: () => emptyMessage,
        handle: options.streamAccessLogs,
      }),
    );
  }
  const transport = createGrpcTransport({
    methods,
    tls: options.tls,
    authenticate: options.authenticate,
    onUnauthenticated: options.onUnauthenticated,
  });
  const port = await transport.listen(options.host, options.port);
  return {
    port,
    health,
    setSecureContext: (tls) => transport.setSecureContext(tls),
    shutdown: (graceMs) => {
      health.endWatches();
      return transport.close(graceMs);
    },
  };
}
