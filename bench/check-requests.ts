/** The Check requests the benches send: Envoy-shaped CheckRequests over every endpoint of bench/catalog-realistic.yaml. */
import { randomUUID } from 'node:crypto';
import * as protoLoader from '@grpc/proto-loader';
import { loaderOptions } from '../src/grpc/protos.js';

export const checkMethod = () => {
  const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', loaderOptions);
  return (definition['envoy.service.auth.v3.Authorization'] as unknown as { Check: protoLoader.MethodDefinition<unknown, unknown> }).Check;
};

/** A gRPC-framed CheckRequest as Envoy sends it: the request's headers, as a real client's would be, and `extraHeaders`. */
export function checkRequestFrame(method: protoLoader.MethodDefinition<unknown, unknown>, key: string, verb: string, path: string, extraHeaders: Record<string, string> = {}): Buffer {
  const headers = {
    ':method': verb,
    ':path': path,
    ':authority': 'api.example.com',
    ':scheme': 'https',
    'x-api-key': key,
    'x-request-id': randomUUID(),
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '203.0.113.7',
    'x-envoy-external-address': '203.0.113.7',
    'user-agent': 'shop-client/4.2 (bench)',
    accept: 'application/json',
    'accept-encoding': 'gzip, deflate, br',
    ...extraHeaders,
  };
  const message = method.requestSerialize({
    attributes: {
      source: { address: { socket_address: { address: '203.0.113.7', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.0.0.12', port_value: 10000 } } },
      request: { time: { seconds: String(Math.floor(Date.now() / 1000)) }, http: { id: headers['x-request-id'], method: verb, path, host: 'api.example.com', scheme: 'https', headers, protocol: 'HTTP/2' } },
    },
  });
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** Requests over every endpoint of bench/catalog-realistic.yaml, with their path parameters filled in. */
export const realisticRequests: ((n: number) => [string, string])[] = [
  () => ['GET', '/v2/products?page=2&per_page=50'],
  (n) => ['GET', `/v2/products/prod-${n % 997}`],
  (n) => ['GET', `/v2/products/prod-${n % 997}/reviews`],
  (n) => ['GET', `/v2/products/prod-${n % 997}/reviews/rev-${n % 89}`],
  (n) => ['POST', `/v2/products/prod-${n % 997}/reviews`],
  (n) => ['GET', `/v2/customers/c-${n % 101}/orders?status=open`],
  (n) => ['GET', `/v2/customers/c-${n % 101}/orders/ord-${n}`],
  (n) => ['POST', `/v2/customers/c-${n % 101}/orders`],
  (n) => ['DELETE', `/v2/customers/c-${n % 101}/orders/ord-${n}`],
  (n) => ['GET', `/v2/search?q=blue+shoes&n=${n}`],
  (n) => ['GET', `/v2/warehouses/wh-${n % 7}/stock/sku-${n % 5003}`],
  (n) => ['GET', `/v2/exports/2026/12/orders-${n % 31}.csv`],
];
