import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMethod } from '../src/check/check-method.js';
import { checkServiceName, startGrpcServer, type RunningGrpcServer } from '../src/grpc/server.js';
import { Status } from '../src/grpc/transport.js';

/** grpc.health.v1 as Kubernetes' gRPC probe and Envoy's health checker call it: a grpc-js client on the canonical proto. */

const healthProto = createRequire(import.meta.url).resolve('grpc-health-check/proto/health/v1/health.proto');
const { grpc: { health: { v1: { Health } } } } = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as unknown as {
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

type HealthClient = grpc.Client & {
  Check(request: { service: string }, callback: (error: grpc.ServiceError | null, response: { status: string }) => void): void;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
  List(request: object, callback: (error: grpc.ServiceError | null, response: { statuses: Record<string, { status: string }> }) => void): void;
};

describe('grpc.health.v1', () => {
  let server: RunningGrpcServer;
  let client: HealthClient;

  beforeAll(async () => {
    server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      check: checkMethod((_request, call) => call.fail(Status.UNIMPLEMENTED, 'not under test')),
      // Health answers anyone, even where Checks need a caller token.
      authenticate: () => ({ ok: false, reason: 'no token' }),
    });
    client = new Health(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
  });
  afterAll(async () => {
    client.close();
    await server.shutdown(1_000);
  });

  const check = (service: string) =>
    new Promise<{ status?: string; code?: number }>((resolve) =>
      client.Check({ service }, (error, response) => resolve(error ? { code: error.code } : { status: response.status })),
    );

  it('answers Check for the server and the ext_authz service, and NOT_FOUND for an unknown one', async () => {
    expect(await check('')).toEqual({ status: 'NOT_SERVING' });
    server.health.setStatus('', 'SERVING');
    server.health.setStatus(checkServiceName, 'SERVING');
    expect(await check('')).toEqual({ status: 'SERVING' });
    expect(await check(checkServiceName)).toEqual({ status: 'SERVING' });
    expect(await check('no.such.Service')).toEqual({ code: grpc.status.NOT_FOUND });
  });

  it('streams the status and each change to a Watch, SERVICE_UNKNOWN for an unknown service', async () => {
    server.health.setStatus(checkServiceName, 'SERVING');
    const seen: string[] = [];
    const watch = client.Watch({ service: checkServiceName });
    watch.on('data', (response) => seen.push(response.status));
    watch.on('error', () => {});
    await expect.poll(() => seen).toEqual(['SERVING']);
    server.health.setStatus(checkServiceName, 'NOT_SERVING');
    await expect.poll(() => seen).toEqual(['SERVING', 'NOT_SERVING']);
    watch.cancel();
    server.health.setStatus(checkServiceName, 'SERVING');

    const unknown: string[] = [];
    const other = client.Watch({ service: 'no.such.Service' });
    other.on('data', (response) => unknown.push(response.status));
    other.on('error', () => {});
    await expect.poll(() => unknown).toEqual(['SERVICE_UNKNOWN']);
    other.cancel();
  });

  it('forgets the names its cancelled watches asked for, and refuses a request longer than a service name', async () => {
    const watchers = () => (server.health as unknown as { watchers: Map<string, unknown> }).watchers;
    const watches = Array.from({ length: 20 }, (_, i) => {
      const watch = client.Watch({ service: `made.up.Service${i}` });
      watch.on('error', () => {});
      return new Promise<grpc.ClientReadableStream<{ status: string }>>((resolve) => watch.once('data', () => resolve(watch)));
    });
    for (const watch of await Promise.all(watches)) watch.cancel();
    await expect.poll(() => [...watchers().keys()].filter((name) => name.startsWith('made.up.'))).toEqual([]);
    expect(await check('x'.repeat(2_000))).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED });
  });

  it('lists every service with its status', async () => {
    server.health.setStatus('', 'SERVING');
    server.health.setStatus(checkServiceName, 'NOT_SERVING');
    const statuses = await new Promise<Record<string, { status: string }>>((resolve, reject) =>
      client.List({}, (error, response) => (error ? reject(error) : resolve(response.statuses))),
    );
    expect(statuses).toEqual({ '': { status: 'SERVING' }, [checkServiceName]: { status: 'NOT_SERVING' } });
  });
});
