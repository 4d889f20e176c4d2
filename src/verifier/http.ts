import type { FetchFunction } from './options';

/** The largest answer read from the identity provider (metadata, JWKS, introspection). */
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * The identity provider could not be asked, or gave no usable answer: a network error, a timeout,
 * a 5xx, a body that is not JSON. Internal: the verifier turns it into `TemporarilyUnavailable`.
 */
export class IdpUnreachable extends Error {
  readonly code = 'ERR_IDP_UNREACHABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdpUnreachable';
  }
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/**
 * One call to the identity provider with a timeout and a size limit. Network failures, timeouts
 * and 5xx answers throw IdpUnreachable; other statuses are returned for the caller to judge.
 * `retryNetworkError`: retry once at once on a connection error (not a timeout), for requests that
 * are safe to repeat: a pooled keep-alive connection may have been closed by the server.
 */
export async function callIdp(
  fetchFn: FetchFunction,
  url: string,
  init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; timeout: number; retryNetworkError?: boolean },
): Promise<JsonAnswer> {
  let response: Response;
  try {
    response = await send(fetchFn, url, init);
  } catch (error) {
    if (!init.retryNetworkError || isTimeout(error)) throw unreachable(url, error);
    try {
      response = await send(fetchFn, url, init);
    } catch (again) {
      throw unreachable(url, again);
    }
  }
  if (response.status >= 500) {
    await response.body?.cancel().catch(() => undefined);
    throw new IdpUnreachable(`${url} answered ${response.status}`);
  }
  const length = Number(response.headers.get('content-length') ?? '0');
  if (length > MAX_BODY_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw new IdpUnreachable(`${url} answered ${length} bytes, over the ${MAX_BODY_BYTES} limit`);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw unreachable(url, error);
  }
  if (text.length > MAX_BODY_BYTES) throw new IdpUnreachable(`${url} answered over ${MAX_BODY_BYTES} bytes`);
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new IdpUnreachable(`${url} answered ${response.status} with a body that is not JSON`);
  }
  return { status: response.status, headers: response.headers, body };
}

function send(fetchFn: FetchFunction, url: string, init: { method?: string; headers?: Record<string, string>; body?: string; timeout: number }): Promise<Response> {
  return fetchFn(url, {
    method: init.method ?? 'GET',
    headers: { accept: 'application/json', ...init.headers },
    body: init.body,
    redirect: 'error',
    signal: AbortSignal.timeout(init.timeout),
  });
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

function unreachable(url: string, error: unknown): IdpUnreachable {
  const cause = error instanceof Error ? error.cause : undefined;
  const detail = cause instanceof Error ? `${(error as Error).message}: ${cause.message}` : error instanceof Error ? error.message : String(error);
  return new IdpUnreachable(`${url}: ${isTimeout(error) ? 'timed out' : detail}`, { cause: error });
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `max-age` of a Cache-Control header in ms; 0 for no-store/no-cache; undefined when absent. */
export function maxAgeOf(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined;
  const lower = cacheControl.toLowerCase();
  if (/(^|[\s,])(no-store|no-cache)([\s,=]|$)/.test(lower)) return 0;
  const match = /(?:^|[\s,])max-age\s*=\s*"?(\d+)"?/.exec(lower);
  return match ? Number(match[1]) * 1000 : undefined;
}
