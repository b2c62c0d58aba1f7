import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { contrastRatio, primaryColourProblem, textOn } from '../src/config/colour.js';
import { dailySeries, lastDays, niceCeiling, seriesColours, usageChart } from '../src/portal/chart.js';
import { clientAddress, rateLimitKey } from '../src/portal/client-address.js';
import { cookieNames, parseCookies, setCookie } from '../src/portal/cookies.js';
import { csrfToken, csrfTokenMatches } from '../src/portal/auth-store.js';
import { escapeHtml, html, trusted } from '../src/portal/html.js';
import { webhookUrlProblem } from '../src/portal/portal.js';
import { windowName } from '../src/portal/pricing-view.js';
import { SignUpRateLimit } from '../src/portal/rate-limit.js';
import { parseAddressList } from '../src/config/portal-settings.js';

describe('html template tag', () => {
  it('escapes every interpolated value, in text and in quoted attributes', () => {
    const name = `<script>alert("x")</script> & 'quotes'`;
    expect(html`<p title="${name}">${name}</p>`.text).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;</p>',
    );
  });

  it('nests Html unescaped, joins arrays, and renders null, undefined and false as nothing', () => {
    const items = ['a<b', 'c'].map((item) => html`<li>${item}</li>`);
    expect(html`<ul>${items}</ul>${null}${undefined}${false}${0}`.text).toBe('<ul><li>a&lt;b</li><li>c</li></ul>0');
    expect(html`${trusted('<br>')}`.text).toBe('<br>');
  });

  it('never lets markup characters of any string through', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const out = html`<div data-x="${text}">${text}</div>`.text;
        expect(out).toBe(`<div data-x="${escapeHtml(text)}">${escapeHtml(text)}</div>`);
        expect(escapeHtml(text)).not.toMatch(/[<>"']/);
      }),
    );
  });
});

describe('brand colour', () => {
  it('computes WCAG contrast ratios', () => {
    expect(contrastRatio('#000000', '#ffffff')).toBeCloseTo(21, 5);
    expect(contrastRatio('#ffffff', '#ffffff')).toBe(1);
    expect(contrastRatio('#1d4ed8', '#ffffff')).toBeCloseTo(6.7, 1);
  });

  it('refuses colours that are not #rrggbb or too light to read on white, and picks the label colour on it', () => {
    expect(primaryColourProblem('#1d4ed8')).toBeUndefined();
    expect(primaryColourProblem('blue')).toMatch(/#rrggbb/);
    expect(primaryColourProblem('#1d4ed8; background:url(x)')).toMatch(/#rrggbb/);
    expect(primaryColourProblem('#ffcc00')).toMatch(/contrast 1\.\d+:1, at least 4\.5:1/);
    expect(textOn('#1d4ed8')).toBe('#ffffff');
    expect(textOn('#767676')).toBe('#ffffff');
  });

  it('gives every chart colour at least 3:1 against white, as WCAG asks of graphics', () => {
    for (const colour of seriesColours) expect(contrastRatio(colour, '#ffffff'), colour).toBeGreaterThanOrEqual(3);
  });

  it('is checked when the configuration loads, with the variable named', () => {
    const env = { TOLLGATE_PORTAL_PORT: '8090' };
    expect(loadConfig(env).portal).toMatchObject({ port: 8090, brand: { primaryColour: '#1d4ed8', name: 'Developer portal' }, signUp: { open: true } });
    expect(() => loadConfig({ ...env, TOLLGATE_PORTAL_PRIMARY_COLOR: '#eeeeee' })).toThrow(/TOLLGATE_PORTAL_PRIMARY_COLOR: must be dark enough/);
  });
});

describe('portal configuration', () => {
  it('is off without a port, and validates the public URL, proxies and identity header', () => {
    expect(loadConfig({}).portal).toBeUndefined();
    const env = { TOLLGATE_PORTAL_PORT: '0' };
    expect(loadConfig({ ...env, TOLLGATE_PORTAL_PUBLIC_URL: 'https://developers.example.com' }).portal?.publicUrl).toBe('https://developers.example.com');
    expect(() => loadConfig({ ...env, TOLLGATE_PORTAL_PUBLIC_URL: 'https://example.com/portal' })).toThrow(/TOLLGATE_PORTAL_PUBLIC_URL: must be an origin/);
    expect(() => loadConfig({ ...env, TOLLGATE_PORTAL_TRUSTED_PROXIES: '10.0.0.0/33' })).toThrow(/TOLLGATE_PORTAL_TRUSTED_PROXIES: "10.0.0.0\/33" has a bad prefix/);
    expect(() => loadConfig({ ...env, TOLLGATE_PORTAL_TRUSTED_PROXIES: 'proxy.local' })).toThrow(/not an IP address/);
    expect(() => loadConfig({ ...env, TOLLGATE_PORTAL_IDENTITY_HEADER: 'X-Forwarded-Email' })).toThrow(/needs TOLLGATE_PORTAL_TRUSTED_PROXIES/);
    expect(
      loadConfig({ ...env, TOLLGATE_PORTAL_IDENTITY_HEADER: 'X-Forwarded-Email', TOLLGATE_PORTAL_TRUSTED_PROXIES: '10.0.0.0/8, ::1', TOLLGATE_PORTAL_SIGNUP: 'closed' }).portal,
    ).toMatchObject({ identityHeader: 'x-forwarded-email', trustedProxies: ['10.0.0.0/8', '::1'], signUp: { open: false } });
  });
});

describe('client address and rate limit key', () => {
  const trusted = parseAddressList(['10.0.0.0/8', '::1']);

  it('believes X-Forwarded-For only from trusted proxies, read from the right', () => {
    expect(clientAddress('203.0.113.9', '198.51.100.1', trusted)).toBe('203.0.113.9');
    expect(clientAddress('10.1.1.1', '198.51.100.1', trusted)).toBe('198.51.100.1');
    // A client's own forged entry stands left of the address the proxy saw.
    expect(clientAddress('10.1.1.1', '1.2.3.4, 198.51.100.1', trusted)).toBe('198.51.100.1');
    expect(clientAddress('10.1.1.1', '198.51.100.1, 10.2.2.2', trusted)).toBe('198.51.100.1');
    expect(clientAddress('::ffff:10.1.1.1', 'garbage', trusted)).toBe('10.1.1.1');
    expect(clientAddress('::1', undefined, trusted)).toBe('::1');
    expect(clientAddress('10.1.1.1', '10.3.3.3', new BlockList())).toBe('10.1.1.1');
  });

  it('counts IPv6 clients by their /64', () => {
    expect(rateLimitKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKey('2001:db8:1:2::9')).toBe(rateLimitKey('2001:0db8:0001:0002:ffff::1'));
    expect(rateLimitKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(rateLimitKey('198.51.100.1')).toBe('198.51.100.1');
  });
});

describe('sign-up rate limit', () => {
  const hour = 3_600_000;

  it('allows the burst per address, refills over the window, and says how long to wait', () => {
    const limit = new SignUpRateLimit({ perAddress: 2, global: 100, windowMs: hour, maxAddresses: 10 });
    expect(limit.take('a', 0)).toEqual({ allowed: true });
    expect(limit.take('a', 0)).toEqual({ allowed: true });
    expect(limit.take('a', 0)).toEqual({ allowed: false, scope: 'address', retryAfterMs: hour / 2 });
    expect(limit.take('b', 0)).toEqual({ allowed: true });
    expect(limit.take('a', hour / 2)).toEqual({ allowed: true });
  });

  it('caps everyone together, whatever addresses they come from', () => {
    const limit = new SignUpRateLimit({ perAddress: 5, global: 3, windowMs: hour, maxAddresses: 10 });
    expect([1, 2, 3, 4].map((i) => limit.take(`addr-${i}`, 0).allowed)).toEqual([true, true, true, false]);
    expect(limit.take('addr-5', 0)).toMatchObject({ allowed: false, scope: 'global' });
  });

  it('keeps at most maxAddresses buckets, forgetting refilled ones first', () => {
    const limit = new SignUpRateLimit({ perAddress: 1, global: 1_000_000, windowMs: hour, maxAddresses: 100 });
    for (let i = 0; i < 10_000; i++) limit.take(`rotating-${i}`, i);
    expect(limit.trackedAddresses).toBeLessThanOrEqual(100);
    // The most recent address is still remembered as spent.
    expect(limit.take('rotating-9999', 10_000).allowed).toBe(false);
  });
});

describe('cookies and CSRF tokens', () => {
  it('uses __Host- names and Secure over https only', () => {
    expect(cookieNames(true)).toEqual({ session: '__Host-tollgate_session', csrf: '__Host-tollgate_csrf' });
    expect(cookieNames(false).session).toBe('tollgate_session');
    expect(setCookie('__Host-tollgate_session', 'v', { secure: true, maxAgeSeconds: 60 })).toBe('__Host-tollgate_session=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60');
    expect(setCookie('tollgate_csrf', 'v', { secure: false })).toBe('tollgate_csrf=v; Path=/; HttpOnly; SameSite=Lax');
    expect(parseCookies('a=1; b=2; a=3; junk')).toEqual(new Map([['a', '1'], ['b', '2']]));
  });

  it('derives a token per secret that another secret does not match', () => {
    const token = csrfToken('secret-one');
    expect(csrfTokenMatches('secret-one', token)).toBe(true);
    expect(csrfTokenMatches('secret-two', token)).toBe(false);
    expect(csrfTokenMatches('secret-one', undefined)).toBe(false);
    expect(csrfTokenMatches('secret-one', token.slice(1))).toBe(false);
  });
});

describe('usage chart', () => {
  const days = lastDays(Date.parse('2026-11-03T15:00:00Z'), 3);

  it('lays out every day, endpoints busiest first, with a summary and the same figures as a table', () => {
    expect(days).toEqual(['2026-11-01', '2026-11-02', '2026-11-03']);
    const series = dailySeries(
      [
        { day: '2026-11-01', endpointId: 'list-pets', calls: 2 },
        { day: '2026-11-03', endpointId: 'get-pet', calls: 5 },
        { day: '2026-11-03', endpointId: null, calls: 1 },
        { day: '2026-10-01', endpointId: 'old', calls: 99 },
      ],
      days,
    );
    expect(series.endpoints).toEqual([
      { id: 'get-pet', calls: [0, 0, 5] },
      { id: 'list-pets', calls: [2, 0, 0] },
      { id: '(no endpoint)', calls: [0, 0, 1] },
    ]);
    const svg = usageChart(series, 'c').text;
    expect(svg).toContain('role="img" aria-labelledby="c-title c-desc"');
    expect(svg).toContain('<desc id="c-desc">8 calls from 2026-11-01 to 2026-11-03, most on 2026-11-03 (6), to 3 endpoints: get-pet 5, list-pets 2, (no endpoint) 1.</desc>');
    expect(svg.match(/<rect x=/g)).toHaveLength(3);
    expect(svg).toContain('<tr><th scope="row">2026-11-03</th><td>5</td><td>0</td><td>1</td><td>6</td></tr>');
  });

  it('escapes endpoint names and says so when there were no calls', () => {
    const svg = usageChart(dailySeries([{ day: days[0]!, endpointId: '<x>', calls: 1 }], days), 'c').text;
    expect(svg).not.toContain('<x>');
    expect(usageChart(dailySeries([], days), 'c').text).toContain('No calls from 2026-11-01 to 2026-11-03.');
  });

  it('rounds the axis up to 1, 2 or 5 times a power of ten', () => {
    expect([0, 1, 3, 7, 10, 11, 240, 999].map(niceCeiling)).toEqual([1, 1, 5, 10, 10, 20, 500, 1000]);
  });
});

describe('pricing and webhook helpers', () => {
  it('names rate-limit windows in words', () => {
    expect([1_000, 60_000, 120_000, 3_600_000, 86_400_000, 1_500].map(windowName)).toEqual(['second', 'minute', '2 minutes', 'hour', 'day', '1500 ms']);
  });

  it('takes only public https webhook hosts', () => {
    expect(webhookUrlProblem('https://hooks.example.com/usage?token=abc')).toBeUndefined();
    expect(webhookUrlProblem('https://fdic.example.gov/hook')).toBeUndefined();
    expect(webhookUrlProblem('https://10.example.com/hook')).toBeUndefined();
    expect(webhookUrlProblem('https://[2001:db8::1]/hook')).toBeUndefined();
    expect(webhookUrlProblem('https://hooks.example.com./usage')).toBeUndefined();
    expect(webhookUrlProblem('https://100.128.0.1/hook')).toBeUndefined();
    for (const url of ['http://hooks.example.com', 'https://localhost:8080', 'https://127.0.0.1', 'https://192.168.1.2', 'https://172.20.0.1', 'https://169.254.169.254/', 'https://[fd00::1]/', 'https://[::1]/', 'https://[fe80::1]/', 'https://metadata.internal/', 'https://intranet/', 'not a url', 'https://localhost./x', 'https://metadata.google.internal./x', 'https://printer.local./', 'https://svc.cluster.local./', 'https://100.100.100.200/', 'https://100.64.0.1/', 'https://198.18.0.1/', 'https://239.1.2.3/', 'https://[64:ff9b::a9fe:a9fe]/']) {
      expect(webhookUrlProblem(url), url).toBeDefined();
    }
  });
});
