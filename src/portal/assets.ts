/**
 * The portal's one stylesheet and one small script, served from its own origin (the CSP allows nothing inline).
 * The stylesheet takes the brand's primary colour, validated at start.
 */
import { textOn } from '../config/index.js';

export function stylesheet(primary: string): string {
  return `:root{--primary:${primary};--on-primary:${textOn(primary)};--text:#111827;--muted:#4b5563;--line:#d1d5db;--surface:#f9fafb;--danger:#b91c1c;--ok:#166534}
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;color:var(--text);background:#fff;-webkit-text-size-adjust:100%}
body{margin:0}
a{color:var(--primary)}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid var(--primary);outline-offset:2px}
.skip{position:absolute;left:-9999px}
.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:1}
header.site{border-bottom:1px solid var(--line);background:var(--surface)}
header.site .bar{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.5rem;max-width:64rem;margin:0 auto;padding:.75rem 1rem}
.brand{display:flex;align-items:center;gap:.5rem;font-weight:700;color:var(--text);text-decoration:none;font-size:1.125rem}
.brand img{height:2rem;width:auto}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem 1rem;list-style:none;margin:0;padding:0}
nav a{text-decoration:none;padding:.25rem 0;display:inline-block}
nav a[aria-current=page]{font-weight:700;text-decoration:underline;text-underline-offset:.3em}
nav form{display:inline}
main{max-width:64rem;margin:0 auto;padding:1rem 1rem 3rem}
footer.site{border-top:1px solid var(--line);color:var(--muted);font-size:.875rem}
footer.site p{max-width:64rem;margin:0 auto;padding:1rem}
h1{font-size:1.75rem;line-height:1.25;margin:1rem 0}
h2{font-size:1.25rem;margin:2rem 0 .75rem}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:1rem;padding:0;list-style:none}
.card{border:1px solid var(--line);border-radius:.5rem;padding:1rem;background:#fff}
.card h3{margin:0 0 .25rem}
.price{font-size:1.5rem;font-weight:700;margin:.25rem 0}
.button,button{display:inline-block;font:inherit;font-weight:600;background:var(--primary);color:var(--on-primary);border:2px solid var(--primary);border-radius:.375rem;padding:.5rem 1rem;text-decoration:none;cursor:pointer;min-height:2.75rem}
.button.secondary,button.secondary{background:#fff;color:var(--primary)}
button.danger{background:#fff;color:var(--danger);border-color:var(--danger)}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input,select{font:inherit;width:100%;max-width:28rem;padding:.5rem;border:1px solid var(--muted);border-radius:.375rem;min-height:2.75rem}
input[type=checkbox]{width:auto;min-height:0}
.hint{color:var(--muted);font-size:.875rem;margin:.25rem 0}
.notice{border-left:4px solid var(--primary);background:var(--surface);padding:.75rem 1rem;margin:1rem 0}
.notice.error{border-color:var(--danger)}
.notice.ok{border-color:var(--ok)}
.secret{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--surface);border:1px solid var(--line);border-radius:.375rem;padding:.75rem;overflow-wrap:anywhere;user-select:all}
pre{background:#111827;color:#f9fafb;border-radius:.375rem;padding:.75rem;overflow-x:auto;font-size:.875rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.table-scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9375rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border-bottom:1px solid var(--line);padding:.5rem;text-align:left;vertical-align:top}
td.amount,th.amount{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.row-actions{display:flex;flex-wrap:wrap;gap:.5rem}
.row-actions form{margin:0}
.chart{margin:0}
.chart>svg{width:100%;height:auto;max-height:18rem}
.chart svg text{font-size:12px;fill:var(--muted)}
.chart svg .grid{stroke:var(--line)}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;list-style:none;padding:0;margin:.5rem 0;font-size:.875rem}
.legend li{display:flex;align-items:center;gap:.375rem}
.legend svg{flex:none}
meter{width:100%;max-width:28rem;height:1.25rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
@media (max-width:40rem){h1{font-size:1.5rem}dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.5rem}th,td{padding:.375rem}}
`;
}

/**
 * Progressive enhancement only: the calculator re-quotes as the number changes (the form works without it), and
 * "Copy" buttons copy the text of the element they name.
 */
export const script = `'use strict';
(() => {
  const form = document.querySelector('form[data-calculator]');
  if (form) {
    const input = form.querySelector('input[name=calls]');
    let timer;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        if (!input.checkValidity()) return;
        const url = form.action + '?' + new URLSearchParams(new FormData(form)).toString();
        const response = await fetch(url, { headers: { accept: 'text/html' } });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), 'text/html');
        const fresh = page.getElementById('estimates');
        const current = document.getElementById('estimates');
        if (fresh && current) current.replaceWith(fresh);
        history.replaceState(null, '', url);
      }, 250);
    });
  }
  for (const button of document.querySelectorAll('button[data-copy]')) {
    button.hidden = false;
    button.addEventListener('click', async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = 'Copied';
    });
  }
})();
`;
