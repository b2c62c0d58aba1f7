import type { SecureServerOptions } from 'node:http2';
import type { StreamAccessLogsMessageWire, StreamAccessLogsResponseWire, UndecodableMessageWire } from './als-wire.js';
import { deserializeStreamAccessLogsMessage } from './als-decoder.js';
import { HealthService } from './health.js';
import {
  clientStreamMethod,
  createGrpcTransport,
  frame,
  type Authenticator,
  type ClientStreamCall,
  type Method,
  type Peer,
} from './transport.js';

export type AccessLogHandler = (call: ClientStreamCall<StreamAccessLogsMessageWire | UndecodableMessageWire, StreamAccessLogsResponseWire>) => void;

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** The Check method, built by check/ (`checkMethod`). */
  check: Method;
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
  methods.set(`/${checkServiceName}/Check`, options.check);
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
