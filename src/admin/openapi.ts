import { z } from 'zod';
import type { Route } from './router.js';

/** The OpenAPI 3.1 document, generated from the same schemas that validate requests. */
export function openApiDocument(routes: Route[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const pathParameters = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
    const queryParameters = r.query ? queryParametersOf(r.query) : [];
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      ...(r.auth === 'admin' ? { security: [{ adminToken: [] }] } : r.auth === 'metrics' ? { security: [{ adminToken: [] }, { metricsToken: [] }] } : { security: [] }),
      parameters: [...pathParameters, ...queryParameters],
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body, 'input') } } } } : {}),
      responses: {
        [String(r.successStatus ?? 200)]: {
          description: 'Success',
          ...(r.response ? { content: { 'application/json': { schema: jsonSchema(r.response, 'output') } } } : {}),
        },
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Tollgate admin API', version },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' }, metricsToken: { type: 'http', scheme: 'bearer', description: 'TOLLGATE_METRICS_TOKEN' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' }, request_id: { type: 'string' } },
            },
          },
        },
      },
    },
    paths,
  };
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function queryParametersOf(schema: z.ZodType): Record<string, unknown>[] {
  const json = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({
    name,
    in: 'query',
    required: json.required?.includes(name) ?? false,
    schema: property,
  }));
}
