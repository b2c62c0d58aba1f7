/** Wire shapes of the Envoy messages we read and write, as @grpc/proto-loader presents them (keepCase). */

export interface HeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer;
}

export interface HeaderValueOption {
  header: HeaderValue;
  append?: { value: boolean };
}

/** google.protobuf.Value: protobufjs wants camelCase here even with keepCase (see envoy-notes). */
export type StructValue = { stringValue: string } | { numberValue: number } | { boolValue: boolean };

export interface Struct {
  fields: Record<string, StructValue>;
}

export interface CheckRequestWire {
  attributes?: {
    request?: {
      http?: {
        id?: string;
        method?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: HeaderValue[] };
        path?: string;
        host?: string;
        /** Sent by clients that play Envoy; the server's decoder skips them (the Check does not use them). */
        scheme?: string;
        protocol?: string;
      };
    };
  };
}

/** A CheckResponse as proto-loader decodes it (the CLI's `check` and tests read responses). */
export interface CheckResponseWire {
  status: { code: number; message?: string };
  ok_response?: {
    headers: HeaderValueOption[];
    headers_to_remove: string[];
    response_headers_to_add: HeaderValueOption[];
  };
  denied_response?: {
    /** envoy.type.v3.StatusCode: a number when sent, its enum name when read with `enums: String`. */
    status: { code: number | string };
    headers: HeaderValueOption[];
    body: string;
  };
  dynamic_metadata?: Struct;
}

/** A Struct's string, number and bool values (the ALS decoder reads the Check's metadata straight into this shape). */
export function fromStruct(struct: { fields?: Record<string, Partial<Record<'stringValue' | 'numberValue' | 'boolValue', unknown>>> } | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  const fields = struct?.fields;
  for (const name in fields) {
    const value = fields[name]!;
    const scalar = value.stringValue ?? value.numberValue ?? value.boolValue;
    if (typeof scalar === 'string' || typeof scalar === 'number' || typeof scalar === 'boolean') out[name] = scalar;
  }
  return out;
}

/** The inverse of fromStruct: flat values as a Struct, as Envoy carries dynamic metadata. */
export function toStruct(values: Record<string, string | number | boolean>): Struct {
  const fields: Record<string, StructValue> = {};
  for (const [name, value] of Object.entries(values)) {
    fields[name] = typeof value === 'number' ? { numberValue: value } : typeof value === 'boolean' ? { boolValue: value } : { stringValue: value };
  }
  return { fields };
}
