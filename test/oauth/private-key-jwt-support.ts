import crypto, { type KeyObject } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { SignJWT, type JWTPayload } from 'jose';
import { clientPolicy, createClientWithKeys, type ClientKeysInput } from '../../src/clients/service';
import type { Composition as Composition } from '../../src/compose';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const FORM = 'application/x-www-form-urlencoded';

export type Alg = 'RS256' | 'PS256' | 'ES256';

/** A client's key pair: the private JWK (for openid-client, oauth4webapi), the public JWK (to register) and the KeyObject (to sign here). */
export interface TestKey {
  alg: Alg;
  kid: string;
  privateKey: KeyObject;
  privateJwk: crypto.JsonWebKey & { kid: string };
  publicJwk: crypto.JsonWebKey & { kid: string };
}

export function testKey(alg: Alg, kid = `${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`): TestKey {
  const { privateKey, publicKey } =
    alg === 'ES256' ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    alg,
    kid,
    privateKey,
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid },
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid },
  };
}

export function jwksOf(...keys: TestKey[]): { keys: Array<crypto.JsonWebKey & { kid: string }> } {
  return { keys: keys.map((k) => k.publicJwk) };
}

/** A client registered with keys through the same service the CLI and the admin API use. */
export async function makeKeyClient(services: Composition, keys: ClientKeysInput, input: { scopes?: string[]; audiences?: string[] } = {}): Promise<string> {
  const client = await createClientWithKeys(
    services.handle.db,
    { name: 'key client', scopes: input.scopes ?? ['read', 'write'], audiences: input.audiences ?? ['https://api.test'], keys },
    clientPolicy(services.config),
    { actor: 'test', now: services.now() },
  );
  return client.id;
}

/** A client assertion signed here, claims and header as given (defaults: a valid one for `clientId` at `audience`, now by `nowMs`). */
export async function assertion(
  key: TestKey,
  clientId: string,
  audience: string | string[],
  options: { claims?: JWTPayload; header?: Record<string, unknown>; omit?: string[]; nowMs?: number } = {},
): Promise<string> {
  const now = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const claims: JWTPayload = { iss: clientId, sub: clientId, aud: audience, iat: now, exp: now + 60, jti: crypto.randomUUID(), ...options.claims };
  for (const name of options.omit ?? []) delete claims[name];
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, ...options.header }).sign(key.privateKey);
}

/** An unsigned JWT (`alg: none`). */
export function unsecured(clientId: string, audience: string): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ iss: clientId, sub: clientId, aud: audience, iat: now, exp: now + 60, jti: crypto.randomUUID() })}.`;
}

/** The classic algorithm-confusion forgery: HS256 with the client's public key (as PEM, or as its JWK text) for the MAC key. */
export function hs256WithPublicKey(key: TestKey, clientId: string, audience: string, secretForm: 'pem' | 'jwk'): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${part({ alg: 'HS256', kid: key.kid })}.${part({ iss: clientId, sub: clientId, aud: audience, iat: now, exp: now + 60, jti: crypto.randomUUID() })}`;
  const secret = secretForm === 'pem' ? crypto.createPublicKey({ key: key.publicJwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }) : JSON.stringify(key.publicJwk);
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

export function assertionForm(jwt: string, extra: Record<string, string> = { grant_type: 'client_credentials' }): string {
  return new URLSearchParams({ ...extra, client_assertion_type: JWT_BEARER, client_assertion: jwt }).toString();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A client's own web server on loopback, publishing its JWKS however the test says; counts requests. */
export interface JwksHost {
  url: string;
  requests: number;
  handle: http.RequestListener;
  close(): Promise<void>;
}

export async function jwksHost(initial: http.RequestListener): Promise<JwksHost> {
  const host: JwksHost = { url: '', requests: 0, handle: initial, close: async () => undefined };
  const server = http.createServer((req, res) => {
    host.requests++;
    host.handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  host.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return host;
}

/** A handler serving a JWKS as JSON with the given Cache-Control. */
export function serveJwks(jwks: unknown, cacheControl = 'public, max-age=600'): http.RequestListener {
  return (_req, res) => {
    const body = JSON.stringify(jwks);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': cacheControl, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
}
