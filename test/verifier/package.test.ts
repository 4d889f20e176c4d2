import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeClient, type TestClient } from '../oauth/helpers';
import { clientToken, startIdp, type Idp } from './support';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const PACKAGE = path.join(ROOT, 'packages/verifier');
const RESOURCE = 'https://mcp.test/mcp';
const OTHER = 'https://other.test';

/**
 * The standalone package (docs/verifier-kit.md "Protecting an MCP server": `npm pack` of packages/verifier,
 * installed from the tarball into a scratch project with no network at all (an empty npm cache, an
 * unreachable registry, `--offline`; jose, its only dependency, copied in beforehand), then loaded
 * by plain Node, CommonJS and ESM, verifying real tokens from a real identity provider.
 */
describe('verifier kit: the @rs256-idp/verifier package', () => {
  let idp: Idp;
  let client: TestClient;
  let scratch: string;
  let app: string;
  let packed: { name: string; files: Array<{ path: string }>; filename: string };

  beforeAll(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-verifier-package-'));
    app = path.join(scratch, 'app');
    const offline = ['--offline', '--cache', path.join(scratch, 'npm-cache'), '--registry', 'http://127.0.0.1:9/', '--loglevel', 'error'];
    const install = async () => {
      // prepack compiles src/verifier into the package's dist, as a publisher's `npm pack` would.
      const pack = await run('npm', ['pack', '--json', '--pack-destination', scratch, ...offline], { cwd: PACKAGE });
      [packed] = JSON.parse(pack.stdout) as [typeof packed];
      fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true });
      fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', private: true }));
      fs.cpSync(path.dirname(require.resolve('jose/package.json')), path.join(app, 'node_modules/jose'), { recursive: true });
      await run('npm', ['install', '--no-audit', '--no-fund', ...offline, path.join(scratch, packed.filename)], { cwd: app });
    };
    const provider = async () => {
      idp = await startIdp();
      client = await makeClient(idp.services, { name: 'agent', scopes: ['mcp:read'], audiences: [RESOURCE, OTHER] });
    };
    await Promise.all([install(), provider()]);
  }, 60_000);
  afterAll(async () => {
    await idp?.close();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('holds the compiled kit and nothing else, and depends on jose alone', () => {
    expect(packed.name).toBe('@rs256-idp/verifier');
    const kit = fs
      .readdirSync(path.join(ROOT, 'src/verifier'))
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [`dist/${f.replace(/\.ts$/, '.js')}`, `dist/${f.replace(/\.ts$/, '.d.ts')}`]);
    expect(packed.files.map((f) => f.path).sort()).toEqual([...kit, 'README.md', 'package.json'].sort());
    const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules/@rs256-idp/verifier/package.json'), 'utf8')) as Record<string, unknown>;
    expect(installed.dependencies).toEqual({ jose: '^5.10.0' });
    expect(fs.readdirSync(path.join(app, 'node_modules')).sort()).toEqual(['.package-lock.json', '@rs256-idp', 'jose']);
  });

  it('plain Node (CommonJS) verifies a real token, refuses one for another resource, and loads nothing outside the project', async () => {
    const good = await clientToken(idp, client, { resource: RESOURCE });
    const other = await clientToken(idp, client, { resource: OTHER });
    const script = `
      const { createVerifier, protectedResourceMetadataUrl } = require('@rs256-idp/verifier');
      const verifier = createVerifier({ issuer: process.env.ISSUER, audience: process.env.RESOURCE });
      (async () => {
        const auth = await verifier.verifyCredential(process.env.GOOD);
        const refusal = await verifier.verifyCredential(process.env.OTHER).then(() => null, (e) => ({ code: e.code, reason: e.reason, status: e.status, description: e.error_description }));
        const outside = Object.keys(require.cache).filter((file) => !file.startsWith(process.cwd() + '/'));
        console.log(JSON.stringify({ subject: auth.subject, tokenType: auth.tokenType, scopes: auth.scopes, refusal, outside, metadata: protectedResourceMetadataUrl(process.env.RESOURCE) }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const { stdout } = await run(process.execPath, ['-e', script], { cwd: fs.realpathSync(app), env: { PATH: process.env.PATH, ISSUER: idp.issuer, RESOURCE, GOOD: good, OTHER: other } });
    expect(JSON.parse(stdout)).toEqual({
      subject: client.id,
      tokenType: 'client',
      scopes: ['mcp:read'],
      refusal: { code: 'invalid_token', reason: 'audience', status: 401, description: `audience "${OTHER}" not accepted` },
      outside: [],
      metadata: 'https://mcp.test/.well-known/oauth-protected-resource/mcp',
    });
  });

  it('ESM imports the same names', async () => {
    const good = await clientToken(idp, client, { resource: RESOURCE });
    const script = `
      import { createVerifier, requireAuth, protectedResource } from '@rs256-idp/verifier';
      const verifier = createVerifier({ issuer: process.env.ISSUER, audience: process.env.RESOURCE });
      const auth = await verifier.verifyCredential(process.env.GOOD);
      console.log(JSON.stringify({ subject: auth.subject, middleware: [typeof requireAuth({ verifier }), typeof protectedResource({ resource: process.env.RESOURCE, verifier })] }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env: { PATH: process.env.PATH, ISSUER: idp.issuer, RESOURCE, GOOD: good } });
    expect(JSON.parse(stdout)).toEqual({ subject: client.id, middleware: ['function', 'function'] });
  });
});
