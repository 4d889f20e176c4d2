import crypto from 'node:crypto';

/** Where the hosted pages' one stylesheet is served (CSP `style-src 'self'`: no inline styles anywhere). */
export const STYLESHEET_PATH = '/assets/idp.css';

/**
 * The hosted pages' stylesheet. Contrast: body text #1f2328 on #ffffff (15.8:1), muted #57606a on
 * #ffffff (6.4:1), button text #ffffff on #0b5cad (6.7:1), error #8a1c1c on #fdecec (8.1:1), warning
 * #6a4100 on #fff4d6 (8.1:1), the secondary button #0b5cad on #eef4fb when hovered (6.0:1); every
 * interactive element shows a 3 px focus ring; one column that fits a 320 px wide phone.
 */
const CSS = `*,*::before,*::after{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;font-size:100%;line-height:1.5;color:#1f2328;background:#f3f4f6}
body{margin:0;min-height:100vh;display:flex;align-items:flex-start;justify-content:center;padding:2rem 1rem}
main{width:100%;max-width:26rem;background:#fff;border:1px solid #d0d7de;border-radius:.75rem;padding:1.75rem 1.5rem}
.brand{margin:0 0 .25rem;font-size:.95rem;font-weight:600;color:#57606a}
h1{margin:0 0 1rem;font-size:1.5rem;line-height:1.25}
p{margin:0 0 1rem}
.muted{color:#57606a}
label{display:block;margin:0 0 .25rem;font-weight:600}
input[type=email],input[type=password]{display:block;width:100%;margin:0 0 1rem;padding:.65rem .75rem;font:inherit;color:inherit;background:#fff;border:1px solid #8c959f;border-radius:.4rem}
button{display:inline-block;min-height:2.75rem;padding:.6rem 1.25rem;font:inherit;font-weight:600;color:#fff;background:#0b5cad;border:1px solid #0b5cad;border-radius:.4rem;cursor:pointer}
button.secondary{color:#0b5cad;background:#fff}
button:hover{background:#094c8f;border-color:#094c8f}
button.secondary:hover{background:#eef4fb}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid #1f6feb;outline-offset:2px}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.25rem}
.actions button{flex:1 1 8rem}
.error{padding:.75rem 1rem;color:#8a1c1c;background:#fdecec;border:1px solid #e5a5a5;border-radius:.4rem}
.warning{padding:.75rem 1rem;color:#6a4100;background:#fff4d6;border:1px solid #e3c26b;border-radius:.4rem}
ul.grants{margin:0 0 1rem;padding-left:1.25rem}
ul.grants li{margin:.25rem 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere}
a{color:#0b5cad}
`;

/** The stylesheet as served: bytes, and a strong ETag. */
export const STYLESHEET = Object.freeze({
  body: Buffer.from(CSS),
  etag: `"${crypto.createHash('sha256').update(CSS).digest('base64url').slice(0, 22)}"`,
});
