/**
 * A real headless Chromium for tests that go through a page the way a person does.
 *
 * Usage (one browser per test file, one fresh context per test):
 *
 *   const browser = useBrowser();            // launches in beforeAll, closes in afterAll
 *   it('signs in', () => withPage(browser(), async (page) => {
 *     await page.goto(url);
 *     await page.getByLabel('Email').fill('ada@example.com');
 *   }));
 *   // no JavaScript: withPage(browser(), fn, { javaScriptEnabled: false })
 *
 * The binary: CHROMIUM_PATH when set and present, else a system /usr/bin/chromium, else the one the
 * @sparticuz/chromium devDependency ships (so `npm install` is all a fresh machine needs). Never
 * skip a test for want of a browser: a launch failure fails the test.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';

const SYSTEM_CHROMIUM = '/usr/bin/chromium';

/**
 * For a local headless run as root, not @sparticuz/chromium's AWS Lambda set (single-process etc.).
 * The background-networking flags keep Chromium from dialling out: on a closed network those
 * connections are refused and only add noise and delay.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * The packaged binary, extracted once per machine into `<root>/rs256-idp-chromium-<version>/`.
 * The package's own executablePath() writes to $TMPDIR/chromium and treats the file as ready as
 * soon as it exists, so a second Jest worker can exec a half-written binary (ETXTBSY). Here each
 * caller extracts into its own staging directory (a child process whose TMPDIR is that directory,
 * which also keeps the package's ESM-only entry point out of ts-jest's CommonJS) and renames it
 * into place: the final directory appears complete or not at all, and a caller that loses the
 * rename uses the winner's copy.
 */
export async function extractPackagedChromium(root: string = tmpdir()): Promise<string> {
  const entry = require.resolve('@sparticuz/chromium');
  const { version } = JSON.parse(readFileSync(path.join(path.dirname(entry), '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = path.join(root, `rs256-idp-chromium-${version}`);
  const executable = path.join(dir, 'chromium');
  if (existsSync(executable)) return executable;

  const staging = await mkdtemp(`${dir}.partial-`);
  try {
    const script = `const { default: c } = await import(${JSON.stringify(pathToFileURL(entry).href)}); await c.executablePath();`;
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, TMPDIR: staging },
    });
    await rename(staging, dir).catch((error: NodeJS.ErrnoException) => {
      // Another process renamed its complete copy first.
      if ((error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') || !existsSync(executable)) throw error;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return executable;
}

let packaged: Promise<string> | undefined;

/** Which binary launchBrowser runs: see the comment at the top of this file. */
export async function chromiumExecutable(): Promise<string> {
  const configured = process.env.CHROMIUM_PATH;
  if (configured && existsSync(configured)) return configured;
  if (existsSync(SYSTEM_CHROMIUM)) return SYSTEM_CHROMIUM;
  packaged ??= extractPackagedChromium().catch((error: unknown) => {
    packaged = undefined;
    throw error;
  });
  return packaged;
}

/** The extracted package on Amazon Linux 2023 (CodeBuild, Lambda) brings its own shared libraries. */
function launchEnv(executable: string): Record<string, string | undefined> | undefined {
  const libs = path.join(path.dirname(executable), 'al2023', 'lib');
  if (!existsSync(libs)) return undefined;
  return { ...process.env, LD_LIBRARY_PATH: [libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

export async function launchBrowser(): Promise<Browser> {
  const executablePath = await chromiumExecutable();
  return chromium.launch({ executablePath, args: [...CHROMIUM_ARGS], headless: true, env: launchEnv(executablePath) });
}

/** One browser for the calling test file: launched in beforeAll, closed in afterAll. */
export function useBrowser(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (!browser) throw new Error('useBrowser(): the browser is available inside tests only (it launches in beforeAll)');
    return browser;
  };
}

/** A fresh context (own cookies and storage) and page for fn, closed afterwards whatever happens. */
export async function withPage<T>(
  browser: Browser,
  fn: (page: Page) => Promise<T>,
  options: BrowserContextOptions = {},
): Promise<T> {
  const context = await browser.newContext(options);
  try {
    return await fn(await context.newPage());
  } finally {
    await context.close();
  }
}
