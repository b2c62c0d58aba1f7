/** Cookies of the portal: parsing, and attributes that follow the public URL's scheme. */

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const index = part.indexOf('=');
    if (index <= 0) continue;
    const name = part.slice(0, index).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(index + 1).trim());
  }
  return cookies;
}

export interface CookieNames {
  session: string;
  csrf: string;
}

/**
 * Over https the names take the __Host- prefix: browsers then only accept them Secure, for this host alone (no
 * Domain) and path /, so neither a sibling subdomain nor a plain-http page can plant or overwrite them.
 */
export function cookieNames(secure: boolean): CookieNames {
  const prefix = secure ? '__Host-' : '';
  return { session: `${prefix}tollgate_session`, csrf: `${prefix}tollgate_csrf` };
}

/** HttpOnly, SameSite=Lax, path /; Secure over https. `maxAgeSeconds` 0 deletes the cookie. */
export function setCookie(name: string, value: string, options: { secure: boolean; maxAgeSeconds?: number }): string {
  const parts = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax'];
  if (options.secure) parts.push('Secure');
  if (options.maxAgeSeconds !== undefined) parts.push(`Max-Age=${options.maxAgeSeconds}`);
  return parts.join('; ');
}
