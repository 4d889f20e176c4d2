import request from 'supertest';
import { OpenApiChecker, type OpenApiDocument } from '../helpers/openapi';

/** A fresh TEST-NET-3 address per call, so each test has its own registration limit (IDP_TRUST_PROXY=loopback). */
let last = 0;
export function freshAddress(): string {
  last += 1;
  return `203.0.113.${last}`;
}

/** POST /oauth/register with a JSON body, from `address` (X-Forwarded-For), with an initial access token when given. */
export function register(url: string, body: unknown, options: { address?: string; token?: string } = {}): request.Test {
  let req = request(url).post('/oauth/register').set('X-Forwarded-For', options.address ?? freshAddress());
  if (options.token !== undefined) req = req.set('Authorization', `Bearer ${options.token}`);
  return req.send(body as object);
}

/** The checker of the document a server serves (registration is described as its mode serves it). */
export async function servedDocument(url: string): Promise<OpenApiChecker> {
  const res = await request(url).get('/openapi.json').expect(200);
  return new OpenApiChecker(res.body as OpenApiDocument);
}
