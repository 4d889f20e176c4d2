import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { runCli } from '../../src/cli/program';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { compose, createServer, type Composition } from '../../src/compose';
import { testMek } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freePort } from '../multiprocess/processes';

/**
 * `idp verify` against a real issuer: the service on a real port, its discovery document and JWKS
 * fetched over HTTP, tokens signed by its own current key (or forged); docs/operating.md "The admin CLI".
 */

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('idp verify', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let services: Composition;
  let server: http.Server;
  let issuer: string;

  const verify = async (args: string[], env: Record<string, string> = {}): Promise<Result> => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(['verify', ...args], {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      env: { NODE_ENV: 'test', IDP_LOG_LEVEL: 'silent', IDP_ISSUER: issuer, ...env },
    });
    return { code, stdout, stderr };
  };

  const seconds = () => Math.floor(Date.now() / 1000);
  const claims = (overrides: Record<string, unknown> = {}) => ({
    iss: issuer,
    sub: 'client-1',
    aud: 'https://api.example',
    iat: seconds(),
    exp: seconds() + 600,
    jti: crypto.randomUUID(),
    client_id: 'client-1',
    ...overrides,
  });

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    const config = loadConfig({ NODE_ENV: 'test', IDP_LOG_LEVEL: 'silent', IDP_ISSUER: issuer, IDP_MEK: testMek('verify'), ...database.env });
    const logger = createLogger('silent');
    const metrics = createMetrics();
    services = await compose({ config, logger, metrics, handle });
    server = createServer({ config, logger, metrics, composition: () => services });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await services.close();
    await database.drop();
  });

  it('a valid token: header, claims and the verdict, exit 0', async () => {
    const token = await services.sign(claims(), 'at+jwt');
    const result = await verify([token, '--audience', 'https://api.example']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`"kid": "${services.keys.current.kid}"`);
    expect(result.stdout).toContain('"sub": "client-1"');
    expect(result.stdout).toMatch(/"exp": \d+, {2}\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/);
    expect(result.stdout).toMatch(new RegExp(`verdict: valid: RS256 signature verifies with key "${services.keys.current.kid}" of ${issuer}/.well-known/jwks.json`));

    const json = await verify([token, '--json', '--issuer', issuer]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: true,
      error: null,
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      audience: null,
      header: { alg: 'RS256', typ: 'at+jwt', kid: services.keys.current.kid },
      claims: { sub: 'client-1', aud: 'https://api.example' },
    });
  });

  const rejected = async (token: string, cause: string, code: string, args: string[] = []) => {
    const text = await verify([token, ...args]);
    expect(text.code).toBe(1);
    expect(text.stderr).toBe(`idp: token rejected: ${cause}\n`);
    expect(text.stdout).toContain(`verdict: INVALID: ${cause}`);
    const json = await verify([token, '--json', ...args]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, verdict: cause, error: code });
  };

  it('expired: names the time it expired', async () => {
    const exp = seconds() - 60;
    await rejected(await services.sign(claims({ iat: exp - 600, exp }), 'at+jwt'), `expired at ${new Date(exp * 1000).toISOString()}`, 'ERR_EXPIRED');
  });

  it('wrong audience: names the one asked for and the one the token carries', async () => {
    const token = await services.sign(claims(), 'at+jwt');
    await rejected(token, 'audience "https://other.example" not accepted: the token is for "https://api.example"', 'ERR_AUDIENCE', [
      '--audience',
      'https://other.example',
    ]);
  });

  it('tampered: the signature does not verify', async () => {
    const token = await services.sign(claims(), 'at+jwt');
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const middle = Math.floor(signature.length / 2);
    const flipped = `${signature.slice(0, middle)}${signature[middle] === 'A' ? 'B' : 'A'}${signature.slice(middle + 1)}`;
    const cause = `signature does not verify with key "${services.keys.current.kid}" of ${issuer}/.well-known/jwks.json (altered or forged)`;
    await rejected(`${header}.${payload}.${flipped}`, cause, 'ERR_SIGNATURE');
    // Claims changed under the original signature: the same refusal.
    const forgedClaims = Buffer.from(JSON.stringify({ ...claims(), sub: 'admin' })).toString('base64url');
    await rejected(`${header}.${forgedClaims}.${signature}`, cause, 'ERR_SIGNATURE');
  });

  it('unknown kid: a key the issuer does not publish', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-published' }).sign(privateKey);
    await rejected(token, `unknown kid "not-published": not among the 2 keys of ${issuer}/.well-known/jwks.json (revoked, retired, or signed by another issuer)`, 'ERR_UNKNOWN_KID');
  });

  it('wrong typ: a JWT that is not an access token', async () => {
    await rejected(await services.sign(claims(), 'JWT'), 'typ "JWT" not accepted (expected "at+jwt")', 'ERR_TYP');
  });

  it('wrong issuer, wrong algorithm, malformed', async () => {
    await rejected(await services.sign(claims({ iss: 'https://evil.example' }), 'at+jwt'), `issuer "https://evil.example" not accepted (expected "${issuer}")`, 'ERR_ISSUER');
    const hs = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: services.keys.current.kid }).sign(crypto.randomBytes(32));
    await rejected(hs, 'algorithm "HS256" not accepted (RS256 only)', 'ERR_ALGORITHM');
    await rejected('not-a-token', 'malformed: not a compact JWS (three base64url parts separated by dots)', 'ERR_MALFORMED');
  });

  it('an issuer that cannot be reached or does not publish metadata: one line naming what failed, exit 1', async () => {
    const token = await services.sign(claims(), 'at+jwt');
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await verify([token, '--issuer', nobody]);
    expect(unreachable).toEqual({ code: 1, stdout: '', stderr: `idp: cannot fetch ${nobody}/.well-known/oauth-authorization-server: ECONNREFUSED\n` });
    // The discovery document must name the issuer it was fetched for (RFC 8414 §3.3), else its keys are not that issuer's.
    const impostor = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/.well-known/jwks.json` }));
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const alias = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
    try {
      const mismatch = await verify([token, '--issuer', alias]);
      expect(mismatch).toEqual({
        code: 1,
        stdout: '',
        stderr: `idp: ${alias}/.well-known/oauth-authorization-server names issuer "${issuer}", not "${alias}" (RFC 8414 §3.3: refuse it)\n`,
      });
    } finally {
      impostor.close();
    }
  });

  it('the compiled CLI reads the token from stdin with -, needs no database, and exits 1 on a refusal', async () => {
    const bin = path.resolve(__dirname, '../../dist/src/cli/main.js');
    const run = (token: string, args: string[]) =>
      new Promise<Result>((resolve) => {
        // No DATABASE_URL and a data directory that does not exist: verify never opens a database.
        const child = spawn(process.execPath, [bin, 'verify', '-', ...args], {
          env: { PATH: process.env.PATH, IDP_ISSUER: issuer, IDP_DATA_DIR: '/nonexistent/idp-data', IDP_LOG_LEVEL: 'silent' },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
        child.stdin.end(`Bearer ${token}\n`);
      });
    const token = await services.sign(claims(), 'at+jwt');
    const valid = await run(token, ['--json']);
    expect(valid.stderr).toBe('');
    expect(valid.code).toBe(0);
    expect(JSON.parse(valid.stdout).valid).toBe(true);
    const wrongAudience = await run(token, ['--audience', 'https://other.example']);
    expect(wrongAudience.code).toBe(1);
    expect(wrongAudience.stderr).toBe('idp: token rejected: audience "https://other.example" not accepted: the token is for "https://api.example"\n');
  });
});
