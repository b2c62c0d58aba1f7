import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { filePollMs } from '../src/kernel/file-watch.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { TestPki } from './support/certificates.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/**
 * The gRPC port bills whatever reaches it: TLS, mutual TLS and caller authentication, on the real service with real
 * certificates, the way Envoy connects (grpc-js clients on the canonical protos play it).
 */

const pki = new TestPki();
const serverCa = pki.ca('tollgate-ca');
const meshCa = pki.ca('mesh-ca');
const foreignCa = pki.ca('foreign-ca');
const server = pki.issue(serverCa, 'tollgate', ['DNS:localhost', 'IP:127.0.0.1'], 'server');
const envoyCert = pki.issue(meshCa, 'envoy', ['URI:spiffe://cluster.local/ns/gateway/sa/envoy'], 'client');
const intruderCert = pki.issue(meshCa, 'intruder', ['URI:spiffe://cluster.local/ns/default/sa/intruder'], 'client');
const foreignCert = pki.issue(foreignCa, 'foreign', ['URI:spiffe://cluster.local/ns/gateway/sa/envoy'], 'client');

const trustServer = readFileSync(serverCa.cert);
const tlsAs = (client?: { cert: string; key: string }) =>
  grpc.credentials.createSsl(trustServer, client ? readFileSync(client.key) : null, client ? readFileSync(client.cert) : null);

const unauthenticated = 16;
const unavailable = 14;
const denyNoKey = { method: 'GET', path: '/api/v1/pets' };

/** A forged access-log entry: billable-looking metadata for a customer, weight 100, no Check behind it. */
const forged = (requestId: string) =>
  httpEntry({ requestId, authz: { customer_id: 'acme', subscription_id: 'sub_forged', plan_id: 'pro', product_id: 'petstore', endpoint_id: 'list-pets', key_id: 'key_x', weight: 100, decision: 'allow' } });

const apps: TestApp[] = [];
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const app of apps.splice(0)) await app.close();
});
afterAll(() => pki.remove());

async function start(env: Record<string, string>, timers?: ManualClock): Promise<TestApp> {
  const app = await startTestApp({ mode: 'production', env, ...(timers ? { timers } : {}) });
  apps.push(app);
  return app;
}

function envoy(app: TestApp, connection: ConstructorParameters<typeof FakeEnvoy>[1] = {}) {
  const client = new FakeEnvoy(app.grpcAddress.replace('127.0.0.1', 'localhost'), connection);
  clients.push(client);
  return client;
}

const failureCode = (promise: Promise<unknown>) => promise.then(() => 0, (error: { code: number }) => error.code);

async function storedEvents(app: TestApp): Promise<number> {
  await app.app.metering.meter.flush();
  const [row] = await app.app.db.query<{ count: string }>('SELECT count(*) FROM usage_events');
  return Number(row!.count);
}

async function unauthenticatedCount(app: TestApp, method: string): Promise<number> {
  const { values } = await app.app.metrics.grpcUnauthenticated.get();
  return values.find((value) => value.labels.method === method)?.value ?? 0;
}

/** The serial number of the certificate a new TLS connection to the port is shown. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: trustServer, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('the gRPC port', () => {
  beforeAll(() => {
    // The server's certificate is copied to files the rotation test may replace.
    copyFileSync(server.cert, join(pki.dir, 'served.crt'));
    copyFileSync(server.key, join(pki.dir, 'served.key'));
  });

  it('serves Checks over TLS and refuses plaintext', async () => {
    const app = await start({ TOLLGATE_GRPC_TLS_CERT: server.cert, TOLLGATE_GRPC_TLS_KEY: server.key });
    expect((await envoy(app, { credentials: tlsAs() }).check(denyNoKey)).httpStatus).toBe(401);
    expect(await failureCode(envoy(app).check(denyNoKey))).toBe(unavailable);
  });

  it('with mutual TLS, takes only client certificates of the client CA that name an allowed SPIFFE id', async () => {
    const app = await start({
      TOLLGATE_GRPC_TLS_CERT: server.cert,
      TOLLGATE_GRPC_TLS_KEY: server.key,
      TOLLGATE_GRPC_TLS_CLIENT_CA: meshCa.cert,
      TOLLGATE_GRPC_ALLOWED_PEERS: 'spiffe://cluster.local/ns/gateway/sa/*',
    });
    expect((await envoy(app, { credentials: tlsAs(envoyCert) }).check(denyNoKey)).httpStatus).toBe(401);
    // The handshake itself refuses no certificate, or one another CA signed.
    expect(await failureCode(envoy(app, { credentials: tlsAs() }).check(denyNoKey))).toBe(unavailable);
    expect(await failureCode(envoy(app, { credentials: tlsAs(foreignCert) }).check(denyNoKey))).toBe(unavailable);
    // A certificate of the right CA naming another workload: the call is refused, its access logs are not stored.
    expect(await failureCode(envoy(app, { credentials: tlsAs(intruderCert) }).check(denyNoKey))).toBe(unauthenticated);
    const logs = new AccessLogClient(app.grpcAddress.replace('127.0.0.1', 'localhost'), { credentials: tlsAs(intruderCert) });
    clients.push(logs);
    const stream = logs.open();
    await stream.send([forged('forged-1')]);
    expect(((await stream.end()) as { code: number }).code).toBe(unauthenticated);
    expect(await storedEvents(app)).toBe(0);
    expect(await unauthenticatedCount(app, 'Check')).toBe(1);
    expect(await unauthenticatedCount(app, 'StreamAccessLogs')).toBe(1);
  });

  it('with caller tokens, refuses a call without one, and takes tokens added to the tokens file without a restart', async () => {
    const tokensFile = join(pki.dir, 'caller-tokens');
    writeFileSync(tokensFile, '# one token per line\nenvoy-caller-token-0001\n');
    const timers = new ManualClock(0);
    const app = await start({ TOLLGATE_GRPC_CALLER_TOKENS_FILE: tokensFile }, timers);
    expect(await failureCode(envoy(app).check(denyNoKey))).toBe(unauthenticated);
    expect(await failureCode(envoy(app, { metadata: { authorization: 'Bearer wrong-token-000000000' } }).check(denyNoKey))).toBe(unauthenticated);
    expect((await envoy(app, { metadata: { authorization: 'Bearer envoy-caller-token-0001' } }).check(denyNoKey)).httpStatus).toBe(401);

    // A forged access-log stream without a token bills nothing: it is refused, and nothing of it is stored.
    const logs = new AccessLogClient(app.grpcAddress);
    clients.push(logs);
    const stream = logs.open();
    await stream.send([forged('forged-2'), forged('forged-3')]);
    expect(((await stream.end()) as { code: number }).code).toBe(unauthenticated);
    expect(await storedEvents(app)).toBe(0);

    writeFileSync(tokensFile, 'envoy-caller-token-0001\nenvoy-caller-token-0002\n');
    // The directory watch may see it at once; the poll sees it by the end of its interval in any case.
    await timers.advance(filePollMs);
    const rotated = envoy(app, { metadata: { authorization: 'Bearer envoy-caller-token-0002' } });
    expect(await failureCode(rotated.check(denyNoKey))).toBe(0);
  });

  it('applies a rotated certificate to new connections while open ones keep working', async () => {
    const cert = join(pki.dir, 'served.crt');
    const key = join(pki.dir, 'served.key');
    const timers = new ManualClock(0);
    const app = await start({ TOLLGATE_GRPC_TLS_CERT: cert, TOLLGATE_GRPC_TLS_KEY: key }, timers);
    const port = Number(app.grpcAddress.split(':')[1]);
    const held = envoy(app, { credentials: tlsAs() });
    expect((await held.check(denyNoKey)).httpStatus).toBe(401);
    const before = await servedSerial(port);
    const renewed = pki.issue(serverCa, 'tollgate-renewed', ['DNS:localhost', 'IP:127.0.0.1'], 'server');
    // cert-manager writes the key and the certificate one after the other: the half-written pair is not applied.
    copyFileSync(renewed.key, key);
    copyFileSync(renewed.cert, cert);
    await timers.advance(filePollMs);
    expect(await servedSerial(port)).not.toBe(before);
    expect((await held.check(denyNoKey)).httpStatus).toBe(401);
  });

  it('serves the admin API over TLS when given a certificate', async () => {
    const app = await start({ TOLLGATE_HTTP_TLS_CERT: server.cert, TOLLGATE_HTTP_TLS_KEY: server.key });
    const port = Number(new URL(app.httpUrl).port);
    const status = await new Promise<number>((resolve, reject) => {
      const request = httpsRequest({ host: '127.0.0.1', port, path: '/healthz', servername: 'localhost', ca: trustServer }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      request.end();
    });
    expect(status).toBe(200);
  });
});
