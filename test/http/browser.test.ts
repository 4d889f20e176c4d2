import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { eventually } from '../oauth/helpers';
import { CHROMIUM_ARGS, extractPackagedChromium, useBrowser, withPage } from '../helpers/browser';

// The browser test infrastructure itself: a labelled form on a real local server, filled and posted
// by a real headless Chromium, with and without JavaScript.

// The page's script adds a field, so the post tells whether JavaScript ran.
const FORM = `<!doctype html>
<html><head><title>Sign in</title></head><body>
<form method="post" action="/submit">
  <label for="email">Email address</label>
  <input id="email" name="email" type="email">
  <button type="submit">Continue</button>
</form>
<script>
  const f = document.createElement('input');
  f.type = 'hidden'; f.name = 'js'; f.value = 'on';
  document.forms[0].append(f);
</script>
</body></html>`;

interface FormServer {
  url: string;
  posts: URLSearchParams[];
  close(): Promise<void>;
}

async function startFormServer(): Promise<FormServer> {
  const posts: URLSearchParams[] = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(FORM);
      return;
    }
    if (req.method === 'POST' && req.url === '/submit') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        posts.push(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>Received</p>');
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    posts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const browser = useBrowser();
let site: FormServer;

beforeAll(async () => {
  site = await startFormServer();
});
afterAll(async () => {
  await site.close();
});
beforeEach(() => {
  site.posts.length = 0;
});

it('fills a labelled input and posts the form', async () => {
  await withPage(browser(), async (page) => {
    await page.goto(site.url);
    await page.getByLabel('Email address').fill('ada@example.com');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByText('Received').waitFor();
  });
  expect(site.posts.map((p) => Object.fromEntries(p))).toEqual([{ email: 'ada@example.com', js: 'on' }]);
});

it('works with JavaScript disabled: the form posts without the script having run', async () => {
  await withPage(
    browser(),
    async (page) => {
      await page.goto(site.url);
      await page.getByLabel('Email address').fill('grace@example.com');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByText('Received').waitFor();
    },
    { javaScriptEnabled: false },
  );
  expect(site.posts.map((p) => Object.fromEntries(p))).toEqual([{ email: 'grace@example.com' }]);
});

it('a second caller while the first is still extracting gets a complete binary that launches', async () => {
  // As two Jest workers starting together on a fresh machine: the second arrives once the first is
  // writing the binary. Launching what the second caller got must not meet a half-written file.
  const root = await mkdtemp(path.join(tmpdir(), 'browser-test-'));
  let first: Promise<string> | undefined;
  try {
    first = extractPackagedChromium(root);
    await eventually(async () => {
      const writing = (await readdir(root, { recursive: true })).some((name) => path.basename(name) === 'chromium');
      expect(writing).toBe(true);
    }, 30_000);
    const second = await extractPackagedChromium(root);
    const launched = await chromium.launch({ executablePath: second, args: [...CHROMIUM_ARGS] });
    await launched.close();
    expect(await first).toBe(second);
    // One complete copy; the staging directory of the caller that lost the rename is gone.
    expect(await readdir(root)).toEqual([path.basename(path.dirname(second))]);
  } finally {
    await first?.catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
});
