import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { ApiKeyAdminDeps } from '../api-keys/admin-routes';
import type { ResourceAdminDeps } from '../resources/admin-routes';
import { recordAudit } from '../audit';
import { ClientError } from '../clients/service';
import type { Config } from '../config';
import type { Database } from '../db/schema';
import { ApiError } from '../http/api-error';
import { requestId } from '../http/request';
import { KeyLifecycleError, type KeyLifecycle } from '../keys/lifecycle';
import type { FailureLimiter } from '../ratelimit';
import { TenantError } from '../tenants/repository';
import { printableProblem } from '../text';
import type { Permission } from './permissions';
import { PATH_PARAMETERS } from './schemas';
import type { AdminCaller, AdminTokens } from './tokens';

/**
 * What every /admin/v1 route shares (docs/http-api.md "Admin tokens and the admin API (`/admin/v1`)": the dependencies the
 * admin capability declares, the guard's and handlers' types, path-parameter and cursor checks, and the
 * mapping of domain errors to the API's codes. Each resource's routes are in ./<resource>-routes.ts.
 */
export interface AdminDeps extends ApiKeyAdminDeps, ResourceAdminDeps {
  db: Kysely<Database>;
  now: () => Date;
  settings: Pick<Config, 'issuer' | 'userAudience' | 'clientDefaultAudience' | 'clientTokenTtlMs' | 'production' | 'clientSecretGraceMs'>;
  lifecycle: Pick<KeyLifecycle, 'list' | 'rotate' | 'revoke'>;
  /** This instance's key cache, refreshed at once after a change (the others hear of it by NOTIFY). */
  keys: { refresh(): Promise<void> };
  failures: FailureLimiter;
  adminTokens: Pick<AdminTokens, 'authenticate'>;
}

export type Handler = (req: Request, res: Response, caller: AdminCaller, deps: AdminDeps) => Promise<void>;

/** The path parameters (./schemas.ts): a malformed id is a 400, a well-formed unknown one a 404; others must be printable text. */
const PARAMETERS: Readonly<Record<string, { pattern: RegExp; what: string }>> = PATH_PARAMETERS;

/** Refuses a malformed path parameter with 400. */
export function checkParameters(req: Request): void {
  for (const [name, value] of Object.entries(req.params as Record<string, unknown>)) {
    if (typeof value !== 'string') continue;
    const problem = printableProblem(value);
    if (problem) throw new ApiError('invalid_request', `path parameter ${name} ${problem}`);
    const rule = PARAMETERS[name];
    if (rule && !rule.pattern.test(value)) throw new ApiError('invalid_request', `path parameter ${name} must be ${rule.what}`);
  }
}

export function keyError(error: unknown): never {
  if (error instanceof KeyLifecycleError) {
    const code = error.code === 'ERR_KEY_NOT_FOUND' ? 'not_found' : 'conflict';
    throw new ApiError(code, error.message, error.safeAt ? { details: { safe_at: error.safeAt.toISOString() } } : {});
  }
  throw error;
}

export function clientError(error: unknown): never {
  if (error instanceof ClientError) throw new ApiError(error.code === 'ERR_CLIENT_NOT_FOUND' ? 'not_found' : 'invalid_request', error.message);
  throw error;
}

export function tenantError(error: unknown): never {
  if (error instanceof TenantError) throw new ApiError('invalid_request', error.message);
  throw error;
}

/** A route's guard: the admin token is authenticated (401), must hold `permission` (403), then the input is read. */
export type Guard = (permission: Permission, handler: Handler) => (req: Request, res: Response) => Promise<void>;

/** An audit event of an admin change, with the admin token as actor and the request id. */
export function audit(deps: AdminDeps, req: Request, caller: AdminCaller, action: string, target: string, details?: Record<string, unknown>): Promise<void> {
  return recordAudit(deps.db, { at: deps.now(), actor: caller.actor, action, target, requestId: requestId(req), details });
}

/** Who changes what, when: the change context the services audit with. */
export function change(deps: AdminDeps, req: Request, caller: AdminCaller) {
  return { actor: caller.actor, now: deps.now(), requestId: requestId(req) };
}

