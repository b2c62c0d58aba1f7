/** The developer portal's settings: environment variables to a typed, validated configuration. */
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { primaryColourProblem } from './colour.js';

export interface PortalSettings {
  host: string;
  /** 0: any free port (tests). */
  port: number;
  /** Where customers reach the portal (scheme and host, no path); undefined: http://localhost:<port>. */
  publicUrl: string | undefined;
  /** Where customers call the API (through Envoy), for the first-call example. */
  apiUrl: string;
  brand: { name: string; logoUrl: string | undefined; primaryColour: string };
  signUp: { open: boolean; perAddressPerHour: number; perHour: number };
  /** Addresses of reverse proxies whose X-Forwarded-For is believed, and of the identity proxy. */
  trustedProxies: string[];
  /** An identity proxy in front (oauth2-proxy style): the header carrying the signed-in person's email. */
  identityHeader: string | undefined;
  /** Where "Sign out" goes when the identity proxy signs people in (e.g. /oauth2/sign_out). */
  signOutUrl: string | undefined;
  sessionTtlMs: number;
  linkTtlMs: number;
}

const hour = 3_600_000;

/** Each entry an IPv4 or IPv6 address, or a CIDR range of one. */
export function parseAddressList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', bits, ...rest] = entry.split('/');
    const family = isIP(address);
    if (family === 0 || rest.length > 0) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const prefix = Number(bits);
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new Error(`"${entry}" has a bad prefix length`);
    list.addSubnet(address, prefix, type);
  }
  return list;
}

const commaList = (value: string | undefined) => (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);

/** The variables, merged into the configuration's environment schema. */
export const portalEnvShape = {
  TOLLGATE_PORTAL_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  TOLLGATE_PORTAL_HOST: z.string().default('0.0.0.0'),
  TOLLGATE_PORTAL_PUBLIC_URL: z
    .url({ protocol: /^https?$/ })
    .refine((url) => {
      const parsed = new URL(url);
      return parsed.pathname === '/' && !parsed.search && !parsed.hash && !parsed.username && !parsed.password;
    }, 'must be an origin such as https://developers.example.com: the portal is served at the root of its host')
    .optional(),
  TOLLGATE_PORTAL_API_URL: z.url({ protocol: /^https?$/ }).default('http://localhost:10000'),
  TOLLGATE_PORTAL_NAME: z.string().min(1).max(80).default('Developer portal'),
  TOLLGATE_PORTAL_LOGO_URL: z.url({ protocol: /^https?$/ }).optional(),
  TOLLGATE_PORTAL_PRIMARY_COLOR: z
    .string()
    .default('#1d4ed8')
    .superRefine((colour, ctx) => {
      const problem = primaryColourProblem(colour);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  TOLLGATE_PORTAL_SIGNUP: z.enum(['open', 'closed']).default('open'),
  TOLLGATE_PORTAL_SIGNUP_PER_ADDRESS_PER_HOUR: z.coerce.number().int().positive().default(5),
  TOLLGATE_PORTAL_SIGNUPS_PER_HOUR: z.coerce.number().int().positive().default(100),
  TOLLGATE_PORTAL_TRUSTED_PROXIES: z
    .string()
    .superRefine((value, ctx) => {
      try {
        parseAddressList(commaList(value));
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .optional(),
  TOLLGATE_PORTAL_IDENTITY_HEADER: z
    .string()
    .toLowerCase()
    .regex(/^[a-z0-9-]+$/, 'must be a header name such as x-forwarded-email')
    .optional(),
  TOLLGATE_PORTAL_SIGN_OUT_URL: z.string().regex(/^(https?:\/\/|\/)/, 'must be a URL or a path starting with /').optional(),
  TOLLGATE_PORTAL_SESSION_TTL_MS: z.coerce.number().int().min(60_000).max(30 * 24 * hour).default(12 * hour),
  TOLLGATE_PORTAL_LINK_TTL_MS: z.coerce.number().int().min(60_000).max(24 * hour).default(15 * 60_000),
};

type PortalEnv = z.infer<z.ZodObject<typeof portalEnvShape>>;

/** Undefined when the portal is off (no TOLLGATE_PORTAL_PORT). */
export function portalSettings(e: PortalEnv): PortalSettings | undefined {
  if (e.TOLLGATE_PORTAL_PORT === undefined) return undefined;
  const trustedProxies = commaList(e.TOLLGATE_PORTAL_TRUSTED_PROXIES);
  if (e.TOLLGATE_PORTAL_IDENTITY_HEADER && trustedProxies.length === 0) {
    // Without it anyone could send the header and be whoever they name.
    throw new Error('invalid configuration:\n  TOLLGATE_PORTAL_IDENTITY_HEADER needs TOLLGATE_PORTAL_TRUSTED_PROXIES (the identity proxy\'s addresses)');
  }
  return {
    host: e.TOLLGATE_PORTAL_HOST,
    port: e.TOLLGATE_PORTAL_PORT,
    publicUrl: e.TOLLGATE_PORTAL_PUBLIC_URL && new URL(e.TOLLGATE_PORTAL_PUBLIC_URL).origin,
    apiUrl: e.TOLLGATE_PORTAL_API_URL.replace(/\/$/, ''),
    brand: { name: e.TOLLGATE_PORTAL_NAME, logoUrl: e.TOLLGATE_PORTAL_LOGO_URL, primaryColour: e.TOLLGATE_PORTAL_PRIMARY_COLOR.toLowerCase() },
    signUp: {
      open: e.TOLLGATE_PORTAL_SIGNUP === 'open',
      perAddressPerHour: e.TOLLGATE_PORTAL_SIGNUP_PER_ADDRESS_PER_HOUR,
      perHour: e.TOLLGATE_PORTAL_SIGNUPS_PER_HOUR,
    },
    trustedProxies,
    identityHeader: e.TOLLGATE_PORTAL_IDENTITY_HEADER,
    signOutUrl: e.TOLLGATE_PORTAL_SIGN_OUT_URL,
    sessionTtlMs: e.TOLLGATE_PORTAL_SESSION_TTL_MS,
    linkTtlMs: e.TOLLGATE_PORTAL_LINK_TTL_MS,
  };
}
