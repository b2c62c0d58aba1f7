import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { adminTokenFromDataDir, usageSigningKeyFromDataDir } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { clusterConnection } from '../src/kernel/redis-client.js';
import { silentLogger } from '../src/kernel/logger.js';

describe('configuration', () => {
  it('has working defaults for the embedded mode', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ catalogPath: 'examples/petstore.yaml', dataDir: '.tollgate', databaseUrl: undefined, grpc: { port: 9001 }, http: { port: 8080 } });
    expect(config.redis).toMatchObject({ url: undefined, failureMode: 'local', timeoutMs: 50 });
    expect(config.jwt).toBeUndefined();
  });

  it('accepts Redis Cluster seeds as comma-separated URLs, and TLS', () => {
    expect(loadConfig({ TOLLGATE_REDIS_URL: 'redis://a:6379, redis://b:6379' }).redis.url).toBe('redis://a:6379, redis://b:6379');
    expect(loadConfig({ TOLLGATE_REDIS_URL: 'rediss://user:pw@redis.example.com:6380' }).redis.url).toContain('rediss://');
  });

  it('connects to Redis Cluster with the TLS, ACL user and password of the seed URLs, as a single URL would', () => {
    const url = 'rediss://app:p%40ss@a.example.com:6380';
    const { nodes, credentials } = clusterConnection([url, 'rediss://app:p%40ss@b.example.com']);
    expect(nodes).toEqual([
      { host: 'a.example.com', port: 6380 },
      { host: 'b.example.com', port: 6379 },
    ]);
    // ioredis's own reading of the same URL, for one server (it marks TLS as `true`, which connects as `{}` does).
    const single = new Redis(url, { lazyConnect: true }).options;
    expect([Boolean(single.tls), single.username, single.password]).toEqual([true, 'app', 'p@ss']);
    expect(credentials).toEqual({ tls: {}, username: 'app', password: 'p@ss' });
    expect(clusterConnection(['redis://a:6379', 'redis://b:6379']).credentials).toEqual({});
  });

  it('names the variable of every bad value', () => {
    expect(() => loadConfig({ TOLLGATE_REDIS_URL: 'http://x', TOLLGATE_GRPC_PORT: 'ninety', TOLLGATE_ADMIN_TOKEN: 'short' })).toThrow(
      /TOLLGATE_REDIS_URL[\s\S]*TOLLGATE_GRPC_PORT[\s\S]*TOLLGATE_ADMIN_TOKEN/,
    );
    expect(() => loadConfig({ TOLLGATE_REDIS_FAILURE_MODE: 'maybe' })).toThrow(/TOLLGATE_REDIS_FAILURE_MODE/);
    expect(() => loadConfig({ TOLLGATE_JWT_JWKS_URL: 'https://a/jwks', TOLLGATE_JWT_JWKS_FILE: 'jwks.json' })).toThrow(/exclusive/);
  });

  it('takes the build commit the image recorded, none when the build passed an empty one', () => {
    expect(loadConfig({ TOLLGATE_BUILD_COMMIT: '0f83cff1' }).buildCommit).toBe('0f83cff1');
    expect(loadConfig({ TOLLGATE_BUILD_COMMIT: '' }).buildCommit).toBeUndefined();
    expect(loadConfig({}).buildCommit).toBeUndefined();
    expect(() => loadConfig({ TOLLGATE_BUILD_COMMIT: 'main; rm -rf' })).toThrow(/TOLLGATE_BUILD_COMMIT/);
  });

  it('reads TLS and caller settings for the gRPC port, and refuses incomplete ones', () => {
    expect(loadConfig({}).grpc).toMatchObject({ tls: undefined, callers: { allowedPeers: [], tokens: [], tokensFile: undefined } });
    const grpc = loadConfig({
      TOLLGATE_GRPC_TLS_CERT: '/tls/tls.crt',
      TOLLGATE_GRPC_TLS_KEY: '/tls/tls.key',
      TOLLGATE_GRPC_TLS_CLIENT_CA: '/tls/ca.crt',
      TOLLGATE_GRPC_ALLOWED_PEERS: 'spiffe://cluster.local/ns/gw/sa/envoy, DNS:envoy.internal',
      TOLLGATE_GRPC_CALLER_TOKENS: 'token-aaaaaaaaaaaaaaaa,token-bbbbbbbbbbbbbbbb',
    }).grpc;
    expect(grpc.tls).toEqual({ cert: '/tls/tls.crt', key: '/tls/tls.key', clientCa: '/tls/ca.crt', requireClientCertificate: true });
    expect(grpc.callers.allowedPeers).toEqual(['spiffe://cluster.local/ns/gw/sa/envoy', 'DNS:envoy.internal']);
    expect(grpc.callers.tokens).toHaveLength(2);
    expect(() => loadConfig({ TOLLGATE_GRPC_TLS_CERT: '/tls/tls.crt' })).toThrow(/TOLLGATE_GRPC_TLS_CERT and TOLLGATE_GRPC_TLS_KEY go together/);
    expect(() => loadConfig({ TOLLGATE_GRPC_TLS_CLIENT_CA: '/tls/ca.crt' })).toThrow(/TOLLGATE_GRPC_TLS_CLIENT_CA needs/);
    expect(() => loadConfig({ TOLLGATE_GRPC_CALLER_TOKENS: 'short' })).toThrow(/TOLLGATE_GRPC_CALLER_TOKENS: each token must be at least 16 characters/);
    expect(() => loadConfig({ TOLLGATE_HTTP_TLS_KEY: '/tls/tls.key' })).toThrow(/TOLLGATE_HTTP_TLS_CERT and TOLLGATE_HTTP_TLS_KEY go together/);
  });

  it('turns events on with a NATS URL only, with defaults for the stream, subjects and publisher', () => {
    expect(loadConfig({}).events).toBeUndefined();
    expect(loadConfig({ TOLLGATE_NATS_STREAM: 'EVENTS' }).events).toBeUndefined();
    expect(loadConfig({ TOLLGATE_NATS_URL: 'nats://nats.messaging:4222' }).events).toEqual({
      source: '/tollgate',
      nats: {
        servers: ['nats://nats.messaging:4222'],
        stream: 'TOLLGATE',
        subjectPrefix: 'tollgate',
        createStream: true,
        duplicateWindowMs: 120_000,
        timeoutMs: 5_000,
        token: undefined,
        credsFile: undefined,
        tls: undefined,
      },
      intervalMs: 1_000,
      batchSize: 500,
      retry: { baseMs: 1_000, maxMs: 60_000 },
      retentionMs: 3_600_000,
    });
  });

  it('reads every events setting: servers, stream, credentials, TLS and the publisher', () => {
    const events = loadConfig({
      TOLLGATE_NATS_URL: 'tls://a.example.com:4222, b.example.com:4222',
      TOLLGATE_NATS_STREAM: 'BILLING_EVENTS',
      TOLLGATE_NATS_SUBJECT_PREFIX: 'acme.tollgate',
      TOLLGATE_NATS_CREATE_STREAM: 'false',
      TOLLGATE_NATS_DUPLICATE_WINDOW_MS: '600000',
      TOLLGATE_NATS_TIMEOUT_MS: '2000',
      TOLLGATE_NATS_CREDS_FILE: '/nats/tollgate.creds',
      TOLLGATE_NATS_TLS_CA: '/nats/ca.crt',
      TOLLGATE_NATS_TLS_CERT: '/nats/tls.crt',
      TOLLGATE_NATS_TLS_KEY: '/nats/tls.key',
      TOLLGATE_EVENTS_SOURCE: '//tollgate.acme.example',
      TOLLGATE_EVENTS_INTERVAL_MS: '250',
      TOLLGATE_EVENTS_BATCH_SIZE: '1000',
      TOLLGATE_EVENTS_RETRY_BASE_MS: '500',
      TOLLGATE_EVENTS_RETRY_MAX_MS: '30000',
      TOLLGATE_EVENTS_RETENTION_MS: '0',
    }).events!;
    expect(events).toEqual({
      source: '//tollgate.acme.example',
      nats: {
        servers: ['tls://a.example.com:4222', 'b.example.com:4222'],
        stream: 'BILLING_EVENTS',
        subjectPrefix: 'acme.tollgate',
        createStream: false,
        duplicateWindowMs: 600_000,
        timeoutMs: 2_000,
        token: undefined,
        credsFile: '/nats/tollgate.creds',
        tls: { ca: '/nats/ca.crt', cert: '/nats/tls.crt', key: '/nats/tls.key' },
      },
      intervalMs: 250,
      batchSize: 1_000,
      retry: { baseMs: 500, maxMs: 30_000 },
      retentionMs: 0,
    });
    expect(loadConfig({ TOLLGATE_NATS_URL: 'nats://n:4222', TOLLGATE_NATS_TOKEN: 's3cret' }).events!.nats.token).toBe('s3cret');
  });

  it('refuses bad events settings, naming the variable', () => {
    const nats = { TOLLGATE_NATS_URL: 'nats://n:4222' };
    expect(() => loadConfig({ TOLLGATE_NATS_URL: 'http://n:4222' })).toThrow(/TOLLGATE_NATS_URL: must be NATS server addresses/);
    expect(() => loadConfig({ TOLLGATE_NATS_URL: 'nats://a:4222,,nats://b:4222' })).toThrow(/TOLLGATE_NATS_URL/);
    expect(() => loadConfig({ ...nats, TOLLGATE_NATS_STREAM: 'my.stream' })).toThrow(/TOLLGATE_NATS_STREAM/);
    for (const prefix of ['tollgate.>', 'a..b', 'a b', '.a', 'a.*']) expect(() => loadConfig({ ...nats, TOLLGATE_NATS_SUBJECT_PREFIX: prefix })).toThrow(/TOLLGATE_NATS_SUBJECT_PREFIX/);
    expect(() => loadConfig({ ...nats, TOLLGATE_NATS_DUPLICATE_WINDOW_MS: '10' })).toThrow(/TOLLGATE_NATS_DUPLICATE_WINDOW_MS/);
    expect(() => loadConfig({ ...nats, TOLLGATE_EVENTS_BATCH_SIZE: '0' })).toThrow(/TOLLGATE_EVENTS_BATCH_SIZE/);
    expect(() => loadConfig({ ...nats, TOLLGATE_NATS_TOKEN: 't', TOLLGATE_NATS_CREDS_FILE: '/c' })).toThrow(/TOLLGATE_NATS_TOKEN and TOLLGATE_NATS_CREDS_FILE are exclusive/);
    expect(() => loadConfig({ ...nats, TOLLGATE_NATS_TLS_CERT: '/t.crt' })).toThrow(/TOLLGATE_NATS_TLS_CERT and TOLLGATE_NATS_TLS_KEY go together/);
    expect(() => loadConfig({ ...nats, TOLLGATE_EVENTS_RETRY_BASE_MS: '5000', TOLLGATE_EVENTS_RETRY_MAX_MS: '1000' })).toThrow(/TOLLGATE_EVENTS_RETRY_MAX_MS/);
  });

  it('takes several usage signing keys for rotation, each at least 32 characters, and keeps a generated one', () => {
    const first = 'k'.repeat(32);
    const second = 'l'.repeat(40);
    expect(loadConfig({ TOLLGATE_USAGE_SIGNING_KEY: `${first}, ${second}` }).usageSigningKeys).toEqual([first, second]);
    expect(loadConfig({}).usageSigningKeys).toEqual([]);
    expect(() => loadConfig({ TOLLGATE_USAGE_SIGNING_KEY: `${first},short` })).toThrow(/TOLLGATE_USAGE_SIGNING_KEY: each key must be at least 32 characters/);
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-usage-key-'));
    const generated = usageSigningKeyFromDataDir(dir, silentLogger);
    expect(generated.length).toBeGreaterThanOrEqual(32);
    expect(usageSigningKeyFromDataDir(dir, silentLogger)).toBe(generated);
    writeFileSync(join(dir, 'usage-signing-key'), 'too-short\n');
    expect(usageSigningKeyFromDataDir(dir, silentLogger)).not.toBe('too-short');
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps a generated admin token, and replaces a truncated one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-token-'));
    const token = adminTokenFromDataDir(dir, silentLogger);
    expect(token.length).toBeGreaterThanOrEqual(16);
    expect(adminTokenFromDataDir(dir, silentLogger)).toBe(token);
    writeFileSync(join(dir, 'admin-token'), '');
    const replaced = adminTokenFromDataDir(dir, silentLogger);
    expect(replaced.length).toBeGreaterThanOrEqual(16);
    expect(readFileSync(join(dir, 'admin-token'), 'utf8').trim()).toBe(replaced);
    rmSync(dir, { recursive: true, force: true });
  });
});
