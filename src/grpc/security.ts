import { readFileSync } from 'node:fs';
import type { GrpcConfig } from '../config/index.js';
import { type Logger, readTlsFiles, type TlsServerOptions, watchFiles, watchTlsFiles } from '../kernel/index.js';
import { authenticates, callerAuthenticator, type CallerPolicy } from './callers.js';
import type { Authenticator, Peer } from './transport.js';

export interface GrpcSecurity {
  tls: TlsServerOptions | undefined;
  authenticate: Authenticator | undefined;
  onUnauthenticated: (method: string, peer: Peer, reason: string) => void;
  /** For the start log: which transport and which callers. */
  describe(): Record<string, unknown>;
  /** Starts applying rotated certificates and tokens to the running server. */
  watch(setSecureContext: (tls: TlsServerOptions) => void): void;
  close(): void;
}

/** Refusals are logged at most this often per peer address: a misconfigured Envoy must not flood the log. */
const refusalLogEveryMs = 60_000;

/** TLS, mutual TLS and caller authentication of the gRPC port, from the configuration, with file rotation. */
export function grpcSecurity(config: GrpcConfig, countRefusal: (method: string) => void, logger: Logger): GrpcSecurity {
  const tls = config.tls ? readTlsFiles(config.tls) : undefined;
  let tokens = readTokens(config.callers);
  const policy: CallerPolicy = {
    clientCertificates: Boolean(config.tls?.clientCa),
    allowedPeers: config.callers.allowedPeers,
    tokens: () => tokens,
  };
  if (policy.allowedPeers.length > 0 && !policy.clientCertificates) {
    throw new Error('invalid configuration:\n  TOLLGATE_GRPC_ALLOWED_PEERS needs TOLLGATE_GRPC_TLS_CLIENT_CA (peers are known by their client certificates)');
  }
  // A tokens file that is empty for now still means callers must authenticate: tokens may be added to it.
  const enforced = authenticates(policy) || config.callers.tokensFile !== undefined;
  const lastLogged = new Map<string, number>();
  const closers: { close(): void }[] = [];
  return {
    tls,
    authenticate: enforced ? callerAuthenticator(policy) : undefined,
    onUnauthenticated: (method, peer, reason) => {
      countRefusal(method);
      const now = Date.now();
      if (now - (lastLogged.get(peer.address) ?? -Infinity) < refusalLogEveryMs) return;
      if (lastLogged.size > 10_000) lastLogged.clear();
      lastLogged.set(peer.address, now);
      logger.warn({ method, peer: peer.address, identities: peer.identities, reason }, 'refused an unauthenticated gRPC call (further ones from this address are counted, logged once a minute)');
    },
    describe: () => ({
      tls: !tls ? 'off (plaintext)' : tls.requestCert ? (tls.rejectUnauthorized ? 'mutual TLS, client certificate required' : 'TLS, client certificate optional') : 'TLS',
      callers: enforced
        ? { clientCertificates: policy.clientCertificates, allowedPeers: policy.allowedPeers.length, tokens: tokens.size }
        : 'anyone who reaches the port (set TOLLGATE_GRPC_CALLER_TOKENS or a client CA)',
    }),
    watch: (setSecureContext) => {
      if (config.tls) closers.push(watchTlsFiles(config.tls, setSecureContext, logger));
      const file = config.callers.tokensFile;
      if (file) {
        closers.push(
          watchFiles([file], () => {
            try {
              tokens = readTokens(config.callers);
              logger.info({ file, tokens: tokens.size }, 'caller tokens changed');
            } catch (error) {
              logger.error({ err: (error as Error).message }, 'caller tokens file changed but cannot be read; keeping the previous tokens');
            }
          }),
        );
      }
    },
    close: () => {
      for (const closer of closers.splice(0)) closer.close();
    },
  };
}

/** The configured tokens and those of the tokens file (one per line; blank lines and # comments skipped). */
function readTokens(callers: GrpcConfig['callers']): ReadonlySet<string> {
  const tokens = new Set(callers.tokens);
  if (callers.tokensFile) {
    let content = '';
    try {
      content = readFileSync(callers.tokensFile, 'utf8');
    } catch (error) {
      // Not there (yet): no token is accepted until it is; any other failure is a misconfiguration to report.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`cannot read TOLLGATE_GRPC_CALLER_TOKENS_FILE ${callers.tokensFile}: ${(error as Error).message}`);
      }
    }
    content.split('\n').forEach((line, index) => {
      const token = line.trim();
      if (token === '' || token.startsWith('#')) return;
      if (token.length < 16) throw new Error(`${callers.tokensFile}:${index + 1}: a caller token must be at least 16 characters`);
      tokens.add(token);
    });
  }
  return tokens;
}
